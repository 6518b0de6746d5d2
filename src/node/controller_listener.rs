//! The controller listener (`controller.listener.names`): the quorum's Raft RPCs between voters
//! (`FJORD_RAFT_API_KEY`), broker-only nodes' metadata fetches (`observer`), and the Kafka APIs brokers send the active controller —
//! BrokerRegistration, BrokerHeartbeat, AlterPartition, AllocateProducerIds, and the topic, config,
//! SCRAM, quota and ACL changes brokers forward —
//! each answered from the pure decisions of `controller` through [`ControllerService`]. One task
//! per connection, requests answered in order; a malformed frame closes the connection. With an
//! authorizer, every request but ApiVersions is authorized first as Kafka's controller does it
//! ([`permits`]), for the connection's principal: `User:ANONYMOUS` in plain text, the client
//! certificate's (mapped by `ssl.principal.mapping.rules`) on SSL with one, the SASL login's on
//! SASL_PLAINTEXT / SASL_SSL ([`ListenerSecurity`]). SASL is the client listeners' own
//! authenticator (`server::sasl`), SCRAM credentials are the applied image's.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, AlterClientQuotasRequest, AlterClientQuotasResponse, AlterPartitionRequest, AlterPartitionResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
    BrokerId, BrokerRegistrationRequest, BrokerRegistrationResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    CreateTopicsResponse, DeleteTopicsRequest, DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse, DeleteTopicsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::cluster::ControllerService;
use crate::broker::acl::{self, AuthorizerConfig, Operation, ResourceType};
use crate::metadata::MetadataImage;
use crate::controller::{self, ControllerError, ControllerResult};
use crate::metadata::records::{BrokerEndpoint, BrokerFeature, LeaderRecoveryState, MetadataRecord};
use crate::protocol::header::{decode_request_header, peek_prefix};
use crate::raft::{FJORD_RAFT_API_KEY, transport};

/// How the controller listener authenticates its connections; both None: plain text, every
/// connection `User:ANONYMOUS`.
#[derive(Clone, Default)]
pub struct ListenerSecurity {
    /// SSL / SASL_SSL: the TLS acceptor and the listener's `ssl.principal.mapping.rules`.
    pub tls: Option<(tokio_rustls::TlsAcceptor, crate::config::principal_mapping::PrincipalMapper)>,
    /// SASL_PLAINTEXT / SASL_SSL: the listener's mechanisms and users.
    pub sasl: Option<Arc<crate::config::SaslSettings>>,
    /// `sasl.server.max.receive.size`: the largest frame before the login completes.
    pub sasl_max_receive_bytes: usize,
    /// `connection.failed.authentication.delay.ms`: how long a failed login waits before its
    /// answer and the close.
    pub failed_authentication_delay_ms: u64,
}

/// The longest a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections until `stop`; each is served by its own task. `authorizer`: the node's
/// `authorizer.class.name` settings, `None` without one.
pub async fn serve(listener: TcpListener, service: Arc<ControllerService>, request_bytes_max: usize, authorizer: Option<AuthorizerConfig>, security: ListenerSecurity, stop: watch::Receiver<bool>) {
    let authorizer = Arc::new(authorizer);
    let security = Arc::new(security);
    let mut connections = tokio::task::JoinSet::new();
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            _ = transport::stopped(&mut stopped) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let service = service.clone();
                    let stop = stop.clone();
                    let authorizer = authorizer.clone();
                    let security = security.clone();
                    connections.spawn(async move {
                        if let Err(e) = connection(stream, peer.ip(), service, request_bytes_max, &authorizer, &security, stop).await {
                            tracing::debug!(%peer, error = %e, "controller connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "controller listener accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// One connection: the TLS handshake when the listener has TLS (its client certificate names
/// the principal unless SASL does), then its requests.
async fn connection(stream: TcpStream, peer: IpAddr, service: Arc<ControllerService>, request_bytes_max: usize, authorizer: &Option<AuthorizerConfig>, security: &ListenerSecurity, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let Some((acceptor, mapping)) = &security.tls else {
        return requests(stream, crate::api::ANONYMOUS.to_string(), peer, service, request_bytes_max, authorizer, security, stop).await;
    };
    let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await.map_err(|_| anyhow::anyhow!("TLS handshake timed out"))??;
    let principal = match crate::server::tls::certificate_principal(tls.get_ref().1, mapping) {
        Some(Ok(principal)) if security.sasl.is_none() => principal,
        Some(Err(reason)) if security.sasl.is_none() => {
            tracing::warn!(%peer, %reason, "controller listener: closing connection, authentication failed (ssl.principal.mapping.rules)");
            return Ok(());
        }
        _ => crate::api::ANONYMOUS.to_string(),
    };
    requests(tls, principal, peer, service, request_bytes_max, authorizer, security, stop).await
}

#[allow(clippy::too_many_arguments)]
async fn requests<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S, mut principal: String, peer: IpAddr, service: Arc<ControllerService>, request_bytes_max: usize, authorizer: &Option<AuthorizerConfig>, security: &ListenerSecurity, mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut auth = security.sasl.clone().map(crate::server::sasl::Authenticator::new);
    loop {
        // Before the first login completes, frames are bounded by sasl.server.max.receive.size.
        let max = if auth.as_ref().is_some_and(|a| a.authenticated().is_none()) { security.sasl_max_receive_bytes } else { request_bytes_max };
        let frame = tokio::select! {
            _ = transport::stopped(&mut stop) => return Ok(()),
            frame = transport::read_frame(&mut stream, max) => frame?,
        };
        let Some(frame) = frame else { return Ok(()) };
        let frame = Bytes::from(frame);
        if let Some(auth) = auth.as_mut() {
            use crate::server::sasl::Step;
            let now = std::time::Instant::now();
            if auth.closes_on(&frame, now) {
                tracing::debug!(%peer, %principal, "controller listener: closing connection, SASL session expired without re-authentication (connections.max.reauth.ms)");
                return Ok(());
            }
            let image = service.image();
            let lookup = |user: &str, m: crate::broker::scram::Mechanism| {
                image.scram_credential(user, m.wire_type()).map(|c| crate::broker::scram::Credential { salt: c.salt.clone(), stored_key: c.stored_key.clone(), server_key: c.server_key.clone(), iterations: c.iterations })
            };
            match auth.on_frame(&frame, now, &lookup, &crate::server::sasl::server_nonce) {
                Step::Serve => {}
                Step::Reply(answer) => {
                    write_chunks(&mut stream, &answer).await?;
                    if auth.is_serving()
                        && let Some(who) = auth.authenticated()
                    {
                        principal = who.principal.clone();
                    }
                    continue;
                }
                Step::Fail { answer, mechanism, reason } => {
                    tracing::info!(%peer, mechanism = mechanism.map_or("none", |m| m.name()), %reason, "controller listener: closing connection, failed authentication");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(security.failed_authentication_delay_ms)) => {}
                        _ = transport::stopped(&mut stop) => return Ok(()),
                    }
                    if let Some(answer) = answer {
                        write_chunks(&mut stream, &answer).await?;
                    }
                    return Ok(());
                }
            }
        }
        let prefix = peek_prefix(&frame).ok_or_else(|| anyhow::anyhow!("request shorter than a header"))?;
        if authorizer.is_some() && !permits(authorizer.as_ref(), &service.image(), &principal, peer, prefix.api_key) {
            // Kafka answers CLUSTER_AUTHORIZATION_FAILED; the senders here are voters and brokers,
            // which retry on a closed connection, so the operator's clue is this line.
            if let Some(left_out) = DENIED_LOG.allow(std::time::Instant::now(), crate::fault_log::FAULT_LOG_INTERVAL) {
                tracing::warn!(%peer, api_key = prefix.api_key, %principal, left_out,
                    "controller listener: request refused by the authorizer, connection closed; brokers and voters reach the controller listener as this principal, which super.users must name (as in Kafka)");
            }
            return Ok(());
        }
        let response = if prefix.api_key == FJORD_RAFT_API_KEY {
            let (header, body) = transport::parse_request(&frame)?;
            let body = service.raft.handle_rpc(Bytes::copy_from_slice(body)).await;
            transport::encode_response_frame(header.correlation_id, &body)
        } else if prefix.api_key == super::observer::FJORD_METADATA_FETCH_API_KEY {
            let (header, body) = transport::parse_private_request(&frame, super::observer::FJORD_METADATA_FETCH_API_KEY, super::observer::FJORD_METADATA_FETCH_API_VERSION)?;
            let body = super::observer::answer(&service, body).await;
            transport::encode_response_frame(header.correlation_id, &body)
        } else {
            let operations = (prefix.api_key == ApiKey::DescribeCluster as i16).then(|| cluster_operations(authorizer.as_ref(), &service.image(), &principal, peer));
            handle_kafka(&service, frame, operations).await?
        };
        stream.write_all(&response).await?;
    }
}

/// Writes a SASL answer (in-memory chunks only).
async fn write_chunks<S: AsyncWrite + Unpin>(stream: &mut S, frame: &crate::api::ResponseFrame) -> anyhow::Result<()> {
    for chunk in frame {
        match chunk {
            crate::api::Chunk::Memory(bytes) => stream.write_all(bytes).await?,
            crate::api::Chunk::File(_) => anyhow::bail!("a SASL answer is never read from a file"),
        }
    }
    Ok(())
}

/// Refusals on the controller listener, logged at most once per interval.
static DENIED_LOG: crate::fault_log::FaultLog = crate::fault_log::FaultLog::new();

/// What a request of `api_key` on this listener needs on the cluster, as Kafka's ControllerApis
/// asks: nothing for ApiVersions (and the SASL APIs), DESCRIBE for DescribeQuorum, CLUSTER_ACTION for the rest (the
/// voters' Raft RPCs, brokers' registrations, heartbeats, AlterPartition and producer-id blocks,
/// and the requests brokers forward, which Kafka wraps in an Envelope that needs CLUSTER_ACTION;
/// the broker checked the client's own permission before forwarding).
fn required(api_key: i16) -> Option<Operation> {
    // The SASL APIs get here only outside a login, to be answered ILLEGAL_SASL_STATE, which
    // Kafka's controller does without authorizing them.
    if [ApiKey::ApiVersions, ApiKey::SaslHandshake, ApiKey::SaslAuthenticate].iter().any(|k| *k as i16 == api_key) {
        None
    } else if api_key == ApiKey::DescribeQuorum as i16 {
        Some(Operation::Describe)
    } else if [ApiKey::DescribeCluster, ApiKey::AddRaftVoter, ApiKey::RemoveRaftVoter].iter().any(|k| *k as i16 == api_key) {
        // Unlike a broker, Kafka's controller asks ALTER on the cluster for DescribeCluster
        // (KIP-919); adding and removing voters (KIP-853) need it too.
        Some(Operation::Alter)
    } else {
        Some(Operation::ClusterAction)
    }
}

/// Whether a request of `api_key` from `principal` at `peer` may be served: always without an authorizer; else
/// a super user may, and anyone else only by the applied image's ACLs once the node applied
/// metadata (Kafka's controller refuses all but super users until its ACLs are loaded, so a new
/// quorum forms only if its voters' principal is a super user).
pub(crate) fn permits(authorizer: Option<&AuthorizerConfig>, image: &MetadataImage, principal: &str, peer: IpAddr, api_key: i16) -> bool {
    let (Some(config), Some(operation)) = (authorizer, required(api_key)) else { return true };
    if config.super_users.contains(principal) {
        return true;
    }
    if image.offset == 0 {
        return false;
    }
    // Only CLUSTER bindings can decide: the others are not turned into bindings per request.
    let cluster = image.acls().values().filter(|r| r.resource_type == ResourceType::Cluster.code()).filter_map(acl::AclBinding::from_record).collect();
    acl::authorized(&acl::AclSet::new(cluster), config, principal, peer, operation, ResourceType::Cluster, acl::CLUSTER_NAME)
}

/// The CLUSTER operations `principal` may perform (DescribeCluster's authorized-operations field):
/// all of them without an authorizer or for a super user, else what the image's CLUSTER bindings allow.
fn cluster_operations(authorizer: Option<&AuthorizerConfig>, image: &MetadataImage, principal: &str, peer: IpAddr) -> i32 {
    let Some(config) = authorizer.filter(|c| !c.super_users.contains(principal)) else {
        return ResourceType::Cluster.all_operations();
    };
    let cluster = acl::AclSet::new(image.acls().values().filter(|r| r.resource_type == ResourceType::Cluster.code()).filter_map(acl::AclBinding::from_record).collect());
    let allowed = ResourceType::Cluster.operations().iter().copied().filter(|op| acl::authorized(&cluster, config, principal, peer, *op, ResourceType::Cluster, acl::CLUSTER_NAME));
    acl::operations_field(allowed)
}

/// The Kafka APIs served here, with the versions offered (ApiVersions on this listener).
fn served() -> Vec<(ApiKey, i16, i16)> {
    fn range<R: Request>(key: ApiKey) -> (ApiKey, i16, i16) {
        (key, R::VERSIONS.min, R::VERSIONS.max)
    }
    vec![
        (ApiKey::ApiVersions, 0, 3),
        // The login on a SASL controller listener (answered by the authenticator; a handshake
        // reaching its handler gets ILLEGAL_SASL_STATE, as Kafka's does).
        (ApiKey::SaslHandshake, 0, 1),
        (ApiKey::SaslAuthenticate, 0, 2),
        range::<BrokerRegistrationRequest>(ApiKey::BrokerRegistration),
        range::<BrokerHeartbeatRequest>(ApiKey::BrokerHeartbeat),
        range::<AlterPartitionRequest>(ApiKey::AlterPartition),
        range::<CreateTopicsRequest>(ApiKey::CreateTopics),
        range::<DeleteTopicsRequest>(ApiKey::DeleteTopics),
        range::<CreatePartitionsRequest>(ApiKey::CreatePartitions),
        range::<IncrementalAlterConfigsRequest>(ApiKey::IncrementalAlterConfigs),
        range::<DescribeQuorumRequest>(ApiKey::DescribeQuorum),
        // KIP-919: admin clients given --bootstrap-controller find the controllers with it.
        (ApiKey::DescribeCluster, 1, 2),
        range::<ElectLeadersRequest>(ApiKey::ElectLeaders),
        range::<AllocateProducerIdsRequest>(ApiKey::AllocateProducerIds),
        range::<AlterPartitionReassignmentsRequest>(ApiKey::AlterPartitionReassignments),
        range::<ListPartitionReassignmentsRequest>(ApiKey::ListPartitionReassignments),
        range::<AlterUserScramCredentialsRequest>(ApiKey::AlterUserScramCredentials),
        range::<AlterClientQuotasRequest>(ApiKey::AlterClientQuotas),
        range::<CreateAclsRequest>(ApiKey::CreateAcls),
        range::<DeleteAclsRequest>(ApiKey::DeleteAcls),
        // KIP-853: `kafka-metadata-quorum.sh add-controller / remove-controller`.
        range::<kafka_protocol::messages::AddRaftVoterRequest>(ApiKey::AddRaftVoter),
        range::<kafka_protocol::messages::RemoveRaftVoterRequest>(ApiKey::RemoveRaftVoter),
    ]
}

/// `cluster_operations`: the principal's CLUSTER operations, computed for DescribeCluster only.
async fn handle_kafka(service: &ControllerService, frame: Bytes, cluster_operations: Option<i32>) -> anyhow::Result<Vec<u8>> {
    let prefix = peek_prefix(&frame).ok_or_else(|| anyhow::anyhow!("request shorter than a header"))?;
    let key = ApiKey::try_from(prefix.api_key).map_err(|_| anyhow::anyhow!("unknown api key {}", prefix.api_key))?;
    let version = prefix.api_version;
    let Some(&(_, min, max)) = served().iter().find(|(k, _, _)| *k == key) else {
        anyhow::bail!("{key:?} is not served on the controller listener");
    };
    if version < min || version > max {
        if key == ApiKey::ApiVersions {
            let resp = ApiVersionsResponse::default().with_error_code(35).with_api_keys(api_versions());
            return encode(key, 0, prefix.correlation_id, &resp);
        }
        anyhow::bail!("{key:?} v{version} is not served on the controller listener");
    }
    let mut body = frame;
    decode_request_header(key, version, &mut body)?;
    let corr = prefix.correlation_id;
    match key {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &ApiVersionsResponse::default().with_api_keys(api_versions()))
        }
        // Reached only outside a login (a plain-text listener, or an authenticated connection
        // without connections.max.reauth.ms): Kafka's handlers answer ILLEGAL_SASL_STATE.
        ApiKey::SaslHandshake => encode(key, version, corr, &kafka_protocol::messages::SaslHandshakeResponse::default().with_error_code(34)),
        ApiKey::SaslAuthenticate => encode(key, version, corr, &kafka_protocol::messages::SaslAuthenticateResponse::default().with_error_code(34)),
        ApiKey::BrokerRegistration => {
            let req = BrokerRegistrationRequest::decode(&mut body, version)?;
            encode(key, version, corr, &broker_registration(service, req).await)
        }
        ApiKey::BrokerHeartbeat => {
            let req = BrokerHeartbeatRequest::decode(&mut body, version)?;
            encode(key, version, corr, &broker_heartbeat(service, req).await)
        }
        ApiKey::AlterPartition => {
            let req = AlterPartitionRequest::decode(&mut body, version)?;
            encode(key, version, corr, &alter_partition(service, req).await)
        }
        ApiKey::CreateTopics => {
            let req = CreateTopicsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &create_topics(service, req).await)
        }
        ApiKey::DeleteTopics => {
            let req = DeleteTopicsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &delete_topics(service, req, version).await)
        }
        ApiKey::CreatePartitions => {
            let req = CreatePartitionsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &create_partitions(service, req).await)
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = IncrementalAlterConfigsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &incremental_alter_configs(service, req).await)
        }
        ApiKey::DescribeQuorum => {
            let req = DescribeQuorumRequest::decode(&mut body, version)?;
            encode(key, version, corr, &describe_quorum(service, req, version))
        }
        ApiKey::DescribeCluster => {
            let req = kafka_protocol::messages::DescribeClusterRequest::decode(&mut body, version)?;
            encode(key, version, corr, &describe_cluster(service, req, version, cluster_operations))
        }
        ApiKey::ElectLeaders => {
            let req = ElectLeadersRequest::decode(&mut body, version)?;
            encode(key, version, corr, &elect_leaders(service, req, version).await)
        }
        ApiKey::AlterClientQuotas => {
            let req = AlterClientQuotasRequest::decode(&mut body, version)?;
            encode(key, version, corr, &alter_client_quotas(service, req).await)
        }
        ApiKey::CreateAcls => {
            let req = CreateAclsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &create_acls(service, req).await)
        }
        ApiKey::DeleteAcls => {
            let req = DeleteAclsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &delete_acls(service, req).await)
        }
        ApiKey::AlterUserScramCredentials => {
            let req = AlterUserScramCredentialsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &alter_user_scram_credentials(service, req).await)
        }
        ApiKey::AllocateProducerIds => {
            let req = AllocateProducerIdsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &allocate_producer_ids(service, req).await)
        }
        ApiKey::AlterPartitionReassignments => {
            let req = AlterPartitionReassignmentsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &alter_partition_reassignments(service, req, version).await)
        }
        ApiKey::ListPartitionReassignments => {
            let req = ListPartitionReassignmentsRequest::decode(&mut body, version)?;
            encode(key, version, corr, &list_partition_reassignments(service, req).await)
        }
        ApiKey::AddRaftVoter => {
            let req = kafka_protocol::messages::AddRaftVoterRequest::decode(&mut body, version)?;
            encode(key, version, corr, &super::voters::add_raft_voter(service, req).await)
        }
        ApiKey::RemoveRaftVoter => {
            let req = kafka_protocol::messages::RemoveRaftVoterRequest::decode(&mut body, version)?;
            encode(key, version, corr, &super::voters::remove_raft_voter(service, req).await)
        }
        other => anyhow::bail!("{other:?} has no handler on the controller listener"),
    }
}

fn api_versions() -> Vec<ApiVersion> {
    served().into_iter().map(|(k, min, max)| ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max)).collect()
}

fn encode<M: Encodable + HeaderVersion>(key: ApiKey, version: i16, corr: i32, body: &M) -> anyhow::Result<Vec<u8>> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    // ApiVersions answers with header v0 whatever its version, as every client expects.
    let header_version = if key == ApiKey::ApiVersions { 0 } else { key.response_header_version(version) };
    ResponseHeader::default().with_correlation_id(corr).encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.to_vec())
}

fn now_ms() -> u64 {
    crate::broker::replica_manager::now_ms() as u64
}

async fn broker_registration(service: &ControllerService, req: BrokerRegistrationRequest) -> BrokerRegistrationResponse {
    let request = controller::BrokerRegistrationRequest {
        broker_id: req.broker_id.0,
        incarnation_id: req.incarnation_id,
        listeners: req
            .listeners
            .iter()
            .map(|l| BrokerEndpoint { name: l.name.to_string(), host: l.host.to_string(), port: l.port, security_protocol: l.security_protocol })
            .collect(),
        features: req
            .features
            .iter()
            .map(|f| BrokerFeature { name: f.name.to_string(), min_supported_version: f.min_supported_version, max_supported_version: f.max_supported_version })
            .collect(),
        rack: req.rack.as_ref().map(|r| r.to_string()),
        log_dirs: req.log_dirs.clone(),
    };
    match service.decide(|c, image, offset| c.register_broker(image, &request, offset, now_ms())).await {
        Ok(reply) => {
            tracing::info!(broker = request.broker_id, epoch = reply.broker_epoch, "broker registered");
            BrokerRegistrationResponse::default().with_broker_epoch(reply.broker_epoch)
        }
        Err(e) => BrokerRegistrationResponse::default().with_error_code(e.error_code()).with_broker_epoch(-1),
    }
}

async fn broker_heartbeat(service: &ControllerService, req: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
    let request = controller::BrokerHeartbeatRequest {
        broker_id: req.broker_id.0,
        broker_epoch: req.broker_epoch,
        current_metadata_offset: req.current_metadata_offset,
        want_fence: req.want_fence,
        want_shut_down: req.want_shut_down,
    };
    match service.decide(|c, image, _| c.broker_heartbeat(image, &request, now_ms())).await {
        Ok(reply) => BrokerHeartbeatResponse::default()
            .with_is_caught_up(reply.is_caught_up)
            .with_is_fenced(reply.is_fenced)
            .with_should_shut_down(reply.should_shut_down),
        Err(e) => BrokerHeartbeatResponse::default().with_error_code(e.error_code()).with_is_fenced(true),
    }
}

/// AlterClientQuotas forwarded by a broker: decided on the image as a single node decides on its
/// file (`broker::quotas::decide`), each changed value a ClientQuota record every broker follows.
async fn alter_client_quotas(service: &ControllerService, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    use crate::broker::quotas;
    use crate::metadata::records::ClientQuotaRecord;
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    let alterations = crate::api::alter_client_quotas::alterations(&req);
    let validate_only = req.validate_only;
    let decided = service
        .decide(|_, image, _| {
            let (changes, results) = quotas::decide(&image.client_quotas(), &alterations);
            let records = if validate_only {
                vec![]
            } else {
                changes
                    .into_iter()
                    .map(|c| {
                        let entity = c.entity.into_iter().collect();
                        MetadataRecord::ClientQuota(ClientQuotaRecord { entity, key: c.key, value_bits: c.value.unwrap_or(0.0).to_bits(), remove: c.value.is_none() })
                    })
                    .collect()
            };
            Ok(ControllerResult::new(records, results))
        })
        .await;
    let entity_data = |entity: &[(String, Option<String>)]| -> Vec<EntityData> {
        entity.iter().map(|(t, n)| EntityData::default().with_entity_type(StrBytes::from_string(t.clone())).with_entity_name(n.clone().map(StrBytes::from_string))).collect()
    };
    let entries = match decided {
        Ok(results) => results
            .into_iter()
            .map(|(entity, r)| {
                let out = EntryData::default().with_entity(entity_data(&entity)).with_error_message(None);
                match r {
                    Ok(()) => out,
                    Err(e) => out.with_error_code(crate::api::error_code::quota(&e)).with_error_message(Some(StrBytes::from_string(e.to_string()))),
                }
            })
            .collect(),
        Err(e) => alterations
            .iter()
            .map(|a| EntryData::default().with_entity(entity_data(&a.entity)).with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))))
            .collect(),
    };
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// CreateAcls forwarded by a broker (which checked ALTER on the cluster): decided on the image's
/// ACLs as a single node decides on its file (`broker::acl::decide_create`), each new binding an
/// AccessControlEntry record of a new id that every broker's authorizer follows.
async fn create_acls(service: &ControllerService, req: CreateAclsRequest) -> CreateAclsResponse {
    use crate::broker::acl;
    let bindings = crate::api::create_acls::bindings(&req);
    let decided = service
        .decide(|_, image, _| {
            let current = acl::bindings_by_id(image.acls()).into_keys().collect();
            let (added, results) = acl::decide_create(&current, bindings);
            let records = added.into_iter().map(|b| MetadataRecord::AccessControlEntry(b.to_record(uuid::Uuid::new_v4()))).collect();
            Ok(ControllerResult::new(records, results))
        })
        .await;
    match decided {
        Ok(results) => crate::api::create_acls::response(results),
        Err(e) => {
            let results = req
                .creations
                .iter()
                .map(|_| kafka_protocol::messages::create_acls_response::AclCreationResult::default().with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))))
                .collect();
            CreateAclsResponse::default().with_results(results)
        }
    }
}

/// DeleteAcls forwarded by a broker (which checked ALTER on the cluster): decided on the image's
/// ACLs as a single node decides on its file (`broker::acl::decide_delete`), each removed binding
/// a RemoveAccessControlEntry record of its id.
async fn delete_acls(service: &ControllerService, req: DeleteAclsRequest) -> DeleteAclsResponse {
    use crate::broker::acl;
    use crate::metadata::records::RemoveAccessControlEntryRecord;
    let filters = crate::api::delete_acls::filters(&req);
    let decided = service
        .decide(|_, image, _| {
            let ids = acl::bindings_by_id(image.acls());
            let current = ids.keys().cloned().collect();
            let (removed, results) = acl::decide_delete(&current, &filters);
            let records = removed.iter().filter_map(|b| ids.get(b)).map(|&id| MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id })).collect();
            Ok(ControllerResult::new(records, results))
        })
        .await;
    match decided {
        Ok(results) => crate::api::delete_acls::response(results),
        Err(e) => {
            let results = req
                .filters
                .iter()
                .map(|_| kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult::default().with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))))
                .collect();
            DeleteAclsResponse::default().with_filter_results(results)
        }
    }
}

/// AlterUserScramCredentials forwarded by a broker: decided on the image as a single node
/// decides on its file (`broker::scram::decide`), the credentials kept as metadata records that
/// every broker follows.
async fn alter_user_scram_credentials(service: &ControllerService, req: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    use crate::broker::scram::{self, Change};
    use crate::metadata::records::{RemoveUserScramCredentialRecord, UserScramCredentialRecord};
    use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    let (deletions, upsertions) = crate::api::alter_user_scram_credentials::alterations(&req);
    let decided = service
        .decide(|_, image, _| {
            let (changes, results) = scram::decide(|user, m| image.scram_credential(user, m.wire_type()).is_some(), &deletions, &upsertions);
            let records = changes
                .into_iter()
                .map(|c| match c {
                    Change::Delete(name, m) => MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord { name, mechanism: m.wire_type() }),
                    Change::Upsert(name, m, c) => MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                        name,
                        mechanism: m.wire_type(),
                        salt: c.salt,
                        stored_key: c.stored_key,
                        server_key: c.server_key,
                        iterations: c.iterations,
                    }),
                })
                .collect();
            Ok(ControllerResult::new(records, results))
        })
        .await;
    let results = match decided {
        Ok(results) => results
            .into_iter()
            .map(|(user, r)| {
                let out = AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
                match r {
                    Ok(()) => out,
                    Err(e) => out.with_error_code(crate::api::error_code::scram(&e)).with_error_message(Some(StrBytes::from_string(e.to_string()))),
                }
            })
            .collect(),
        Err(e) => {
            let users: std::collections::BTreeSet<String> = deletions.iter().map(|d| d.0.clone()).chain(upsertions.iter().map(|u| u.user.clone())).collect();
            users
                .into_iter()
                .map(|u| AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(u)).with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))))
                .collect()
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// AllocateProducerIds: the next block of producer ids for a registered broker, recorded in the
/// metadata log so that no id is handed out twice in the cluster (nor again after a restart).
async fn allocate_producer_ids(service: &ControllerService, req: AllocateProducerIdsRequest) -> AllocateProducerIdsResponse {
    match service.decide(|c, image, _| c.allocate_producer_ids(image, req.broker_id.0, req.broker_epoch)).await {
        Ok(block) => AllocateProducerIdsResponse::default()
            .with_producer_id_start(kafka_protocol::messages::ProducerId(block.first_producer_id))
            .with_producer_id_len(block.size as i32),
        Err(e) => AllocateProducerIdsResponse::default().with_error_code(e.error_code()).with_producer_id_start(kafka_protocol::messages::ProducerId(-1)),
    }
}

async fn alter_partition(service: &ControllerService, req: AlterPartitionRequest) -> AlterPartitionResponse {
    use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
    let request = controller::AlterPartitionRequest {
        broker_id: req.broker_id.0,
        broker_epoch: req.broker_epoch,
        topics: req
            .topics
            .iter()
            .map(|t| controller::AlterPartitionTopic {
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| controller::AlterPartitionData {
                        partition_index: p.partition_index,
                        leader_epoch: p.leader_epoch,
                        new_isr: if p.new_isr_with_epochs.is_empty() {
                            p.new_isr.iter().map(|b| controller::BrokerState { broker_id: b.0, broker_epoch: -1 }).collect()
                        } else {
                            p.new_isr_with_epochs.iter().map(|b| controller::BrokerState { broker_id: b.broker_id.0, broker_epoch: b.broker_epoch }).collect()
                        },
                        leader_recovery_state: if p.leader_recovery_state == 1 { LeaderRecoveryState::Recovering } else { LeaderRecoveryState::Recovered },
                        partition_epoch: p.partition_epoch,
                    })
                    .collect(),
            })
            .collect(),
    };
    match service.decide(|c, image, _| c.alter_partition(image, &request)).await {
        Ok(topics) => AlterPartitionResponse::default().with_topics(
            topics
                .into_iter()
                .map(|t| {
                    TopicData::default().with_topic_id(t.topic_id).with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|(index, result)| match result {
                                Ok(s) => PartitionData::default()
                                    .with_partition_index(index)
                                    .with_leader_id(BrokerId(s.leader_id))
                                    .with_leader_epoch(s.leader_epoch)
                                    .with_isr(s.isr.into_iter().map(BrokerId).collect())
                                    .with_leader_recovery_state(s.leader_recovery_state.value())
                                    .with_partition_epoch(s.partition_epoch),
                                Err(e) => PartitionData::default().with_partition_index(index).with_error_code(e.error_code()),
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
        Err(e) => AlterPartitionResponse::default().with_error_code(e.error_code()),
    }
}

/// CreateTopics forwarded by a broker (which checked the configs): placed, recorded, answered
/// with ids once applied here. `validate_only` decides without writing.
async fn create_topics(service: &ControllerService, req: CreateTopicsRequest) -> CreateTopicsResponse {
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    let topics: Vec<controller::CreatableTopic> = req
        .topics
        .iter()
        .map(|t| controller::CreatableTopic {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect(),
            configs: t.configs.iter().filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string()))).collect(),
        })
        .collect();
    let validate_only = req.validate_only;
    let seed = now_ms();
    let decided = service
        .decide(|c, image, _| {
            let mut result = c.create_topics(image, &topics, uuid::Uuid::new_v4, seed);
            if validate_only {
                result.records.clear();
            }
            Ok(result)
        })
        .await;
    let results = match decided {
        Ok(results) => results,
        Err(e) => topics.iter().map(|_| Err(e.clone())).collect(),
    };
    CreateTopicsResponse::default().with_topics(
        req.topics
            .iter()
            .zip(results)
            .map(|(t, r)| {
                let base = CreatableTopicResult::default().with_name(t.name.clone());
                match r {
                    Ok(created) => base
                        .with_topic_id(created.topic_id)
                        .with_num_partitions(created.num_partitions)
                        .with_replication_factor(created.replication_factor),
                    Err(e) => base
                        .with_error_code(e.error_code())
                        .with_error_message(Some(StrBytes::from_string(e.message())))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            })
            .collect(),
    )
}

/// DeleteTopics forwarded by a broker: by name, or by id (v6+).
async fn delete_topics(service: &ControllerService, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    let refs: Vec<controller::TopicRef> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => controller::TopicRef::Name(n.0.to_string()),
                None => controller::TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names.iter().map(|n| controller::TopicRef::Name(n.0.to_string())).collect()
    };
    let decided = service.decide(|c, image, _| Ok(c.delete_topics(image, &refs))).await;
    let results = match decided {
        Ok(r) => r,
        Err(e) => refs.iter().map(|_| Err(e.clone())).collect(),
    };
    DeleteTopicsResponse::default().with_responses(
        refs.iter()
            .zip(results)
            .map(|(r, result)| {
                let base = match r {
                    controller::TopicRef::Name(n) => DeletableTopicResult::default().with_name(Some(kafka_protocol::messages::TopicName(StrBytes::from_string(n.clone())))),
                    controller::TopicRef::Id(id) => DeletableTopicResult::default().with_topic_id(*id),
                };
                match result {
                    Ok(id) => base.with_topic_id(if version >= 6 { id } else { uuid::Uuid::nil() }),
                    Err(e) => base.with_error_code(e.error_code()).with_error_message((version >= 5).then(|| StrBytes::from_string(e.message()))),
                }
            })
            .collect(),
    )
}

/// CreatePartitions forwarded by a broker.
async fn create_partitions(service: &ControllerService, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    let topics: Vec<controller::CreatePartitionsTopic> = req
        .topics
        .iter()
        .map(|t| controller::CreatePartitionsTopic {
            name: t.name.0.to_string(),
            count: t.count,
            assignments: t.assignments.as_ref().map(|a| a.iter().map(|x| x.broker_ids.iter().map(|b| b.0).collect()).collect()),
        })
        .collect();
    let validate_only = req.validate_only;
    let seed = now_ms();
    let decided = service
        .decide(|c, image, _| {
            let mut result = c.create_partitions(image, &topics, seed);
            if validate_only {
                result.records.clear();
            }
            Ok(result)
        })
        .await;
    let results = match decided {
        Ok(r) => r,
        Err(e) => topics.iter().map(|_| Err(e.clone())).collect(),
    };
    CreatePartitionsResponse::default().with_results(
        req.topics
            .iter()
            .zip(results)
            .map(|(t, r)| {
                let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                match r {
                    Ok(()) => base,
                    Err(e) => base.with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))),
                }
            })
            .collect(),
    )
}

/// IncrementalAlterConfigs of topics, client metrics subscriptions and dynamic broker configs
/// (BROKER "" for the cluster default, "<id>" for one broker), forwarded by a broker (which
/// validated the values against its own config, as Kafka's brokers do).
async fn incremental_alter_configs(service: &ControllerService, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    use crate::controller::{AlterConfigOp, AlterConfigOpType};
    use crate::metadata::ConfigResource;
    use crate::metadata::records::ConfigResourceType;
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let resources: Vec<(ConfigResource, Vec<AlterConfigOp>)> = req
        .resources
        .iter()
        .map(|r| {
            let ops = r
                .configs
                .iter()
                .map(|c| AlterConfigOp {
                    name: c.name.to_string(),
                    op: match c.config_operation {
                        1 => AlterConfigOpType::Delete,
                        2 => AlterConfigOpType::Append,
                        3 => AlterConfigOpType::Subtract,
                        _ => AlterConfigOpType::Set,
                    },
                    value: c.value.as_ref().map(|v| v.to_string()),
                })
                .collect();
            // Brokers forward topics' configs, KIP-714 client metrics subscriptions and dynamic
            // broker configs.
            let resource = match ConfigResourceType::from_code(r.resource_type) {
                Some(ConfigResourceType::ClientMetrics) => ConfigResource { resource_type: ConfigResourceType::ClientMetrics, name: r.resource_name.to_string() },
                Some(ConfigResourceType::Broker) => ConfigResource::broker(r.resource_name.to_string()),
                _ => ConfigResource::topic(r.resource_name.to_string()),
            };
            (resource, ops)
        })
        .collect();
    let validate_only = req.validate_only;
    let validate = |resource: &ConfigResource, configs: &std::collections::BTreeMap<String, String>| {
        if resource.resource_type == ConfigResourceType::ClientMetrics {
            use crate::broker::client_metrics::{ClientMetricsError as C, validate};
            return validate(&resource.name, configs).map_err(|e| match e {
                C::InvalidConfig(m) => ControllerError::InvalidConfig(m),
                C::InvalidRequest(m) | C::Store(m) => ControllerError::InvalidRequest(m),
            });
        }
        if resource.resource_type == ConfigResourceType::Broker {
            // The names a broker accepts (dynamic ones, custom ones); the values were checked
            // by the forwarding broker, as Kafka's controller leaves them to it.
            return crate::broker::check_dynamic_config_names(configs).map_err(ControllerError::InvalidRequest);
        }
        match configs.keys().find(|k| crate::config::topic_def(k).is_none()) {
            Some(k) => Err(ControllerError::InvalidConfig(format!("Unknown topic config name: {k}"))),
            None => Ok(()),
        }
    };
    let decided = service.decide(|c, image, _| Ok(c.incremental_alter_configs(image, &resources, validate, validate_only))).await;
    let results = match decided {
        Ok(r) => r,
        Err(e) => resources.iter().map(|_| Err(e.clone())).collect(),
    };
    IncrementalAlterConfigsResponse::default().with_responses(
        req.resources
            .iter()
            .zip(results)
            .map(|(r, result)| {
                let base = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
                match result {
                    Ok(()) => base,
                    Err(e) => base.with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))),
                }
            })
            .collect(),
    )
}

/// DescribeQuorum from the Raft state of this voter, which must lead the quorum (the others
/// answer NOT_LEADER_OR_FOLLOWER and the asking broker tries another voter). Raft log indexes
/// stand for Kafka's metadata log offsets: a voter's log end is the index after the last one it
/// holds, the high watermark the index after the last committed one.
fn describe_quorum(service: &ControllerService, req: DescribeQuorumRequest, version: i16) -> DescribeQuorumResponse {
    use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
    let wants_metadata_log = req.topics.iter().any(|t| t.topic_name.0.as_str() == "__cluster_metadata" && t.partitions.iter().any(|p| p.partition_index == 0));
    let topic = TopicData::default().with_topic_name(kafka_protocol::messages::TopicName(StrBytes::from_static_str("__cluster_metadata")));
    if !wants_metadata_log {
        let p = PartitionData::default().with_partition_index(0).with_error_code(3);
        return DescribeQuorumResponse::default().with_topics(vec![topic.with_partitions(vec![p])]);
    }
    let status = service.raft.status();
    if !status.is_leader {
        let p = PartitionData::default().with_partition_index(0).with_error_code(6).with_leader_id(BrokerId(status.leader_id.map_or(-1, |l| l as i32)));
        return DescribeQuorumResponse::default().with_topics(vec![topic.with_partitions(vec![p])]);
    }
    let ms = |t: Option<std::time::SystemTime>| t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(-1, |d| d.as_millis() as i64);
    let hw = status.high_watermark() as i64;
    // A member of the Raft membership, voter or learner, as Kafka reports a replica.
    let member = |v: &crate::raft::VoterStatus| {
        let end = v.matched_index.map_or(-1, |i| i as i64 + 1);
        let contact = ms(v.last_contact);
        ReplicaState::default()
            .with_replica_id(BrokerId(v.node_id as i32))
            .with_replica_directory_id(v.directory_id.unwrap_or_default())
            .with_log_end_offset(end)
            .with_last_fetch_timestamp(contact)
            // Caught up: it held everything committed when it last answered.
            .with_last_caught_up_timestamp(if end >= hw { contact } else { -1 })
    };
    let voters = status.voters.iter().map(member).collect();
    // Broker-only nodes fetching the log from this leader (see `observer`), and the Raft
    // learners (a controller being added, a removed voter whose broker goes on): the replicas
    // of the log without a vote.
    let mut observers: Vec<ReplicaState> = service
        .observers
        .active(status.leader_epoch)
        .iter()
        .map(|o| {
            ReplicaState::default()
                .with_replica_id(BrokerId(o.node_id))
                .with_replica_directory_id(o.directory_id.unwrap_or_default())
                .with_log_end_offset(o.covered.map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX - 1) + 1))
                .with_last_fetch_timestamp(ms(Some(o.last_fetch)))
                .with_last_caught_up_timestamp(ms(o.last_caught_up))
        })
        .collect();
    for l in &status.learners {
        if !observers.iter().any(|o| o.replica_id.0 == l.node_id as i32) {
            observers.push(member(l));
        }
    }
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.node_id as i32))
        .with_leader_epoch(status.leader_epoch as i32)
        .with_high_watermark(hw)
        .with_current_voters(voters)
        .with_observers(observers);
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![topic.with_partitions(vec![partition])]);
    if version >= 2 {
        resp.nodes = status
            .voters
            .iter()
            .filter_map(|v| {
                let (host, port) = v.addr.rsplit_once(':')?;
                let listener = Listener::default().with_name(StrBytes::from_string(service.listener_name.clone())).with_host(StrBytes::from_string(host.trim_matches(['[', ']']).to_string())).with_port(port.parse().ok()?);
                Some(Node::default().with_node_id(BrokerId(v.node_id as i32)).with_listeners(vec![listener]))
            })
            .collect();
    }
    resp
}

/// DescribeCluster for a controller endpoint (KIP-919): the voters on this listener and the
/// active controller (-1 while there is none), as Kafka's controller answers
/// `kafka-metadata-quorum.sh --bootstrap-controller` and other admin clients pointed at it.
fn describe_cluster(service: &ControllerService, req: kafka_protocol::messages::DescribeClusterRequest, version: i16, cluster_operations: Option<i32>) -> kafka_protocol::messages::DescribeClusterResponse {
    use crate::api::describe_cluster::{ENDPOINT_TYPE_CONTROLLER, endpoint_type_refusal};
    use kafka_protocol::messages::DescribeClusterResponse;
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    let response = DescribeClusterResponse::default().with_endpoint_type(ENDPOINT_TYPE_CONTROLLER).with_controller_id(BrokerId(-1)).with_cluster_authorized_operations(i32::MIN);
    if let Some((code, message)) = endpoint_type_refusal(ENDPOINT_TYPE_CONTROLLER, req.endpoint_type, version) {
        return response.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)));
    }
    let status = service.raft.status();
    // A controller not yet added to a dynamic quorum (KIP-853) holds no membership: it names the
    // voters it learned from its bootstrap servers.
    let learned: Vec<(u64, String)> = if status.voters.is_empty() { service.known_voters().into_iter().map(|(id, addr)| (id as u64, addr)).collect() } else { Vec::new() };
    let nodes: Vec<DescribeClusterBroker> = status
        .voters
        .iter()
        .map(|v| (v.node_id, v.addr.clone()))
        .chain(learned)
        .filter_map(|(node_id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            Some(DescribeClusterBroker::default().with_broker_id(BrokerId(node_id as i32)).with_host(StrBytes::from_string(host.trim_matches(['[', ']']).to_string())).with_port(port.parse().ok()?))
        })
        .collect();
    // As Kafka: a leader the node list does not hold is reported as none.
    let leader = status.leader_id.map(|l| l as i32).filter(|l| nodes.iter().any(|n| n.broker_id.0 == *l)).unwrap_or(-1);
    response
        .with_cluster_id(StrBytes::from_string(service.cluster_id.clone()))
        .with_controller_id(BrokerId(leader))
        .with_brokers(nodes)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations { cluster_operations.unwrap_or(0) } else { i32::MIN })
}

/// ElectLeaders: preferred (v0, or type 0) or unclean (type 1) elections of the listed
/// partitions, or of every partition when the list is null (then only the partitions where an
/// election was needed are reported, as Kafka's controller does).
async fn elect_leaders(service: &ControllerService, req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let election = if version >= 1 && req.election_type == 1 { controller::ElectionType::Unclean } else { controller::ElectionType::Preferred };
    let all = req.topic_partitions.is_none();
    let decided = service
        .decide(|c, image, _| {
            let partitions: Vec<(String, i32)> = match &req.topic_partitions {
                Some(list) => list.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p))).collect(),
                None => image.topics().flat_map(|t| t.partitions.keys().map(move |p| (t.name.clone(), *p))).collect(),
            };
            let result = c.elect_leaders(image, election, &partitions);
            Ok(ControllerResult::new(result.records, (partitions, result.response)))
        })
        .await;
    match decided {
        Ok((partitions, results)) => crate::api::elect_leaders::results(partitions, results, all),
        Err(e) => ElectLeadersResponse::default().with_error_code(e.error_code()),
    }
}

/// AlterPartitionReassignments (`kafka-reassign-partitions.sh --execute / --cancel`): one result
/// per partition in request order. Without `allow_replication_factor_change` (v1, KIP-860) a
/// target of another size than the partition's replicas is refused with INVALID_REPLICATION_FACTOR.
async fn alter_partition_reassignments(service: &ControllerService, req: AlterPartitionReassignmentsRequest, version: i16) -> AlterPartitionReassignmentsResponse {
    use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
    let allow_rf_change = version < 1 || req.allow_replication_factor_change;
    let targets: Vec<controller::ReassignablePartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| controller::ReassignablePartition {
                topic: t.name.0.to_string(),
                partition_index: p.partition_index,
                replicas: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
            })
        })
        .collect();
    let decided = service
        .decide(|c, image, _| {
            // Targets that change the replication factor are refused before the others are decided.
            let refused: Vec<Option<ControllerError>> = targets
                .iter()
                .map(|t| {
                    let (Some(replicas), false) = (&t.replicas, allow_rf_change) else { return None };
                    let current = image.topic_by_name(&t.topic)?.partitions.get(&t.partition_index)?;
                    let rf = current.replicas.len() - current.adding_replicas.len();
                    (replicas.len() != rf).then(|| ControllerError::InvalidReplicationFactor(format!("The replication factor is changed from {rf} to {}", replicas.len())))
                })
                .collect();
            let accepted: Vec<controller::ReassignablePartition> = targets.iter().zip(&refused).filter(|(_, r)| r.is_none()).map(|(t, _)| t.clone()).collect();
            let result = c.alter_partition_reassignments(image, &accepted);
            let mut decided = result.response.into_iter();
            let results: Vec<Result<(), ControllerError>> = refused.into_iter().map(|r| match r {
                Some(e) => Err(e),
                None => decided.next().unwrap_or(Ok(())),
            }).collect();
            Ok(ControllerResult::new(result.records, results))
        })
        .await;
    // Kafka sends null messages where nothing failed.
    let response = AlterPartitionReassignmentsResponse::default().with_allow_replication_factor_change(req.allow_replication_factor_change).with_error_message(None);
    let results = match decided {
        Ok(r) => r,
        Err(e) => return response.with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))),
    };
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ReassignablePartitionResponse::default().with_partition_index(p.partition_index).with_error_message(None);
                    match results.next().unwrap_or(Ok(())) {
                        Ok(()) => r,
                        Err(e) => r.with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    response.with_responses(topics)
}

/// ListPartitionReassignments (`kafka-reassign-partitions.sh --verify / --list`): the ongoing
/// reassignments, all or of the named partitions, from the active controller's image.
async fn list_partition_reassignments(service: &ControllerService, req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
    use kafka_protocol::messages::BrokerId;
    let ongoing = match service.decide(|_, image, _| Ok(ControllerResult::new(Vec::new(), controller::list_partition_reassignments(image)))).await {
        Ok(o) => o,
        Err(e) => return ListPartitionReassignmentsResponse::default().with_error_code(e.error_code()).with_error_message(Some(StrBytes::from_string(e.message()))),
    };
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(topics) => topics.iter().any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&partition)),
    };
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for o in ongoing.iter().filter(|o| wanted(&o.topic, o.partition_index)) {
        let p = OngoingPartitionReassignment::default()
            .with_partition_index(o.partition_index)
            .with_replicas(ids(&o.replicas))
            .with_adding_replicas(ids(&o.adding_replicas))
            .with_removing_replicas(ids(&o.removing_replicas));
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == o.topic => t.partitions.push(p),
            _ => topics.push(OngoingTopicReassignment::default().with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(o.topic.clone()))).with_partitions(vec![p])),
        }
    }
    ListPartitionReassignmentsResponse::default().with_error_message(None).with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::AccessControlEntryRecord;
    use std::collections::BTreeSet;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn config(super_users: &[&str], allow_everyone_if_no_acl_found: bool) -> AuthorizerConfig {
        AuthorizerConfig { super_users: super_users.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(), allow_everyone_if_no_acl_found }
    }

    fn image(acls: &[(&str, Operation)]) -> MetadataImage {
        let records: Vec<MetadataRecord> = acls
            .iter()
            .enumerate()
            .map(|(i, (principal, op))| {
                MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
                    id: uuid::Uuid::from_u128(i as u128 + 1),
                    resource_type: ResourceType::Cluster.code(),
                    resource_name: acl::CLUSTER_NAME.into(),
                    pattern_type: 3,
                    principal: principal.to_string(),
                    host: "*".into(),
                    operation: op.code(),
                    permission_type: 3,
                })
            })
            .collect();
        let mut image = MetadataImage::new();
        image.apply_batch(5, &records).expect("applies");
        image
    }

    #[test]
    fn the_controller_listener_authorizes_as_kafkas_controller() {
        let heartbeat = ApiKey::BrokerHeartbeat as i16;
        let describe_quorum = ApiKey::DescribeQuorum as i16;
        let versions = ApiKey::ApiVersions as i16;
        assert!(permits(None, &MetadataImage::new(), "User:ANONYMOUS", PEER, heartbeat), "no authorizer: everything");
        let anonymous_super = config(&["User:ANONYMOUS"], false);
        assert!(permits(Some(&anonymous_super), &MetadataImage::new(), "User:ANONYMOUS", PEER, FJORD_RAFT_API_KEY), "a super user before any metadata");
        let strict = config(&["User:admin"], false);
        assert!(permits(Some(&strict), &MetadataImage::new(), "User:ANONYMOUS", PEER, versions), "ApiVersions needs nothing");
        assert!(permits(Some(&strict), &MetadataImage::new(), "User:ANONYMOUS", PEER, ApiKey::SaslHandshake as i16), "nor does a SaslHandshake (answered ILLEGAL_SASL_STATE)");
        assert!(!permits(Some(&strict), &image(&[]), "User:ANONYMOUS", PEER, heartbeat), "no ACL, no allow.everyone.if.no.acl.found");
        // A SASL or certificate principal is authorized as itself: a super user before any metadata.
        assert!(permits(Some(&strict), &MetadataImage::new(), "User:admin", PEER, heartbeat), "the connection's own principal");
        assert!(!permits(Some(&strict), &image(&[("User:ANONYMOUS", Operation::ClusterAction)]), "User:bob", PEER, heartbeat), "another principal's ACL grants nothing");
        assert!(!permits(Some(&strict), &image(&[("User:ANONYMOUS", Operation::Describe)]), "User:ANONYMOUS", PEER, heartbeat));
        assert!(permits(Some(&strict), &image(&[("User:ANONYMOUS", Operation::Describe)]), "User:ANONYMOUS", PEER, describe_quorum));
        assert!(permits(Some(&strict), &image(&[("User:ANONYMOUS", Operation::ClusterAction)]), "User:ANONYMOUS", PEER, heartbeat));
        let open = config(&[], true);
        assert!(!permits(Some(&open), &MetadataImage::new(), "User:ANONYMOUS", PEER, FJORD_RAFT_API_KEY), "not ready: nothing applied yet");
        assert!(permits(Some(&open), &image(&[]), "User:ANONYMOUS", PEER, FJORD_RAFT_API_KEY), "no ACL on the cluster: allow.everyone.if.no.acl.found");
        assert!(!permits(Some(&open), &image(&[("User:admin", Operation::All)]), "User:ANONYMOUS", PEER, FJORD_RAFT_API_KEY), "an ACL on the cluster for someone else");
    }
}
