//! SSL listeners: a broker with a PLAINTEXT and an SSL listener on 127.0.0.1:0, certificates made
//! here with rcgen (never committed keys), spoken to with a rustls client. Proves the Kafka APIs
//! over TLS, fetch bytes equal to the plaintext listener's, Metadata per listener, mTLS, and that
//! bad clients on the TLS port are closed without disturbing anyone else.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A test CA, the broker's certificate for localhost signed by it, and a client certificate.
struct Pki {
    ca_pem: String,
    /// The CA's key: the reload tests sign renewed broker certificates with it.
    ca_key_pem: String,
    server_chain_pem: String,
    server_key_pem: String,
    client_chain_pem: String,
    client_key_pem: String,
}

fn make_pki() -> Pki {
    make_pki_for_client(&[(rcgen::DnType::CommonName, "wire-test-client")])
}

/// The test CA, a broker certificate (serial 1) and a client certificate with subject `client_dn`
/// (its attributes from the first RDN to the last, as RFC 2253 prints them in reverse).
fn make_pki_for_client(client_dn: &[(rcgen::DnType, &str)]) -> Pki {
    use rcgen::{CertificateParams, KeyPair};
    let ca_key_pem = rcgen::KeyPair::generate().expect("CA key").serialize_pem();
    let (ca, ca_key) = test_ca(&ca_key_pem);
    let (server_chain_pem, server_key_pem) = broker_certificate(&ca, &ca_key, "rcgen self signed cert", 1);
    let client_key = KeyPair::generate().expect("client key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in client_dn {
        client_params.distinguished_name.push(kind.clone(), *value);
    }
    let client = client_params.signed_by(&client_key, &ca, &ca_key).expect("client cert");
    Pki {
        ca_pem: ca.pem(),
        ca_key_pem,
        server_chain_pem,
        server_key_pem,
        client_chain_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// The test CA of key `key_pem`: made again from the same key, name and serial, it signs
/// certificates that chain to the CA certificate made before.
fn test_ca(key_pem: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::from_pem(key_pem).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "fjord test CA");
    ca_params.serial_number = Some(rcgen::SerialNumber::from(vec![0x7f]));
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    (ca, ca_key)
}

/// A broker certificate for localhost and 127.0.0.1 signed by the CA, subject CN=`cn`, with
/// serial number `serial`: (chain PEM with the CA, key PEM).
fn broker_certificate(ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair, cn: &str, serial: u8) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("broker key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.serial_number = Some(rcgen::SerialNumber::from(vec![serial]));
    let cert = params.signed_by(&key, ca, ca_key).expect("broker cert");
    (format!("{}{}", cert.pem(), ca.pem()), key.serialize_pem())
}

/// A broker with PLAINTEXT and SSL listeners; the key store is one PEM file (key and chain).
async fn start(pki: &Pki, dir: &tempfile::TempDir, extra: &[String]) -> TestBroker {
    let keystore = dir.path().join("broker.pem");
    std::fs::write(&keystore, format!("{}{}", pki.server_key_pem, pki.server_chain_pem)).expect("key store");
    let mut o = vec![
        "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL".to_string(),
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.location={}", keystore.display()),
    ];
    o.extend(extra.iter().cloned());
    let o: Vec<&str> = o.iter().map(String::as_str).collect();
    TestBroker::start(&o).await
}

fn ssl_addr(b: &TestBroker) -> SocketAddr {
    b.running.as_ref().unwrap().listener_addr("SSL").expect("SSL listener")
}

fn client_config(pki: &Pki, client_cert: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("CA")).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(fjord::server::tls::ring_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if client_cert {
        let chain = CertificateDer::pem_slice_iter(pki.client_chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>().expect("chain");
        builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes()).expect("key")).expect("client auth")
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

async fn tls_connect(pki: &Pki, addr: SocketAddr, client_cert: bool) -> std::io::Result<Client> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(client_config(pki, client_cert));
    let tls = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await?;
    Ok(Client::over(tls))
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn produce(c: &mut Client, topic: &str, records: Bytes) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

/// The records of partition 0 from offset 0, as the broker sends them (v12: by topic name).
async fn fetch(c: &mut Client, topic: &str) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(8 << 20)])]);
    let resp = c.send(&req, 12).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.clone().unwrap_or_default()
}

async fn metadata_ports(c: &mut Client) -> Vec<u16> {
    let resp = c.send(&MetadataRequest::default().with_topics(Some(vec![])), 12).await;
    resp.brokers.iter().map(|b| b.port as u16).collect()
}

/// True when the broker closes the connection within a few seconds, whatever it sent first (a
/// TLS alert) — never a Kafka response.
async fn closed_after_alert(c: &mut Client) -> bool {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut b = [0u8; 256];
        match tokio::time::timeout_at(deadline, c.stream.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got.len() < 64,
            Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
            Err(_) => return false,
        }
    }
}

async fn create_topic(c: &mut Client, topic: &str) {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

#[tokio::test]
async fn the_ssl_listener_serves_produce_and_fetch_over_tls_with_the_plaintext_listeners_bytes() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let b = start(&pki, &dir, &["num.partitions=1".into()]).await;
    let ssl = ssl_addr(&b);
    assert_ne!(ssl, b.addr);
    let mut tls = tls_connect(&pki, ssl, false).await.expect("TLS handshake");
    let versions = tls.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(versions.error_code, 0);
    assert!(!versions.api_keys.is_empty());

    // Each listener's clients are told that listener's endpoint.
    assert_eq!(metadata_ports(&mut tls).await, vec![ssl.port()]);
    let mut plain = b.client().await;
    assert_eq!(metadata_ports(&mut plain).await, vec![b.addr.port()]);
    let coordinator = tls.send(&FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")), 3).await;
    assert_eq!((coordinator.error_code, coordinator.port as u16), (0, ssl.port()));
    let cluster = tls.send(&DescribeClusterRequest::default(), 0).await;
    assert_eq!(cluster.brokers.iter().map(|b| b.port as u16).collect::<Vec<_>>(), vec![ssl.port()]);

    // Produce over TLS: enough batches that the fetch spans several TLS write buffers.
    create_topic(&mut tls, "t").await;
    let mut produced = 0;
    for i in 0..30 {
        let batch = batch(1000, 1_700_000_000_000 + i * 1000, if i % 2 == 0 { Compression::None } else { Compression::Lz4 });
        produced += batch.len();
        assert_eq!(produce(&mut tls, "t", batch).await, 0);
    }
    let over_tls = fetch(&mut tls, "t").await;
    let over_plain = fetch(&mut plain, "t").await;
    assert!(over_tls.len() > 256 * 1024 && over_tls.len() >= produced, "{} bytes fetched of {produced}", over_tls.len());
    assert!(over_tls == over_plain, "the same record bytes over TLS ({}) as over PLAINTEXT ({})", over_tls.len(), over_plain.len());
    b.stop().await;
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_closed_and_everyone_else_keeps_being_served() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let b = start(&pki, &dir, &[]).await;
    let ssl = ssl_addr(&b);
    let mut tls = tls_connect(&pki, ssl, false).await.expect("TLS handshake");
    let mut plain = b.client().await;

    // A Kafka request in clear text on the SSL port: closed, not answered.
    let mut confused = Client::connect(ssl).await;
    let frame = confused.encode_request(&ApiVersionsRequest::default(), 3);
    confused.send_raw(&frame).await;
    assert!(closed_after_alert(&mut confused).await, "a plaintext client on the TLS port is closed");
    // A TLS client that never finishes its handshake does not hold anything up either.
    let _silent = tokio::net::TcpStream::connect(ssl).await.unwrap();
    // A TLS client that does not trust the broker's CA fails its own handshake.
    let other = make_pki();
    assert!(tls_connect(&other, ssl, false).await.is_err(), "an unknown CA fails the handshake");

    assert_eq!(tls.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    assert_eq!(plain.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    let mut again = tls_connect(&pki, ssl, false).await.expect("new TLS clients still connect");
    assert_eq!(again.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    b.stop().await;
}

#[tokio::test]
async fn ssl_client_auth_required_refuses_clients_without_a_certificate_and_serves_those_with_one() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "listener.name.ssl.ssl.client.auth=required".to_string(),
        "listener.name.ssl.ssl.truststore.type=PEM".to_string(),
        format!("listener.name.ssl.ssl.truststore.certificates={}", pki.ca_pem),
    ];
    let b = start(&pki, &dir, &extra).await;
    let ssl = ssl_addr(&b);
    // Without a certificate: with TLS 1.3 the client learns of the refusal at its first read.
    let refused = match tls_connect(&pki, ssl, false).await {
        Err(_) => true,
        Ok(mut c) => {
            let frame = c.encode_request(&ApiVersionsRequest::default(), 3);
            c.send_raw(&frame).await;
            closed_after_alert(&mut c).await
        }
    };
    assert!(refused, "no client certificate, no service");
    let mut with_cert = tls_connect(&pki, ssl, true).await.expect("mTLS handshake");
    assert_eq!(with_cert.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    create_topic(&mut with_cert, "m").await;
    assert_eq!(produce(&mut with_cert, "m", batch(3, 1_700_000_000_000, Compression::None)).await, 0);
    // The plaintext listener is not affected by the SSL listener's client authentication.
    let mut plain = b.client().await;
    assert_eq!(plain.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    b.stop().await;
}

#[tokio::test]
async fn a_pem_key_store_given_as_property_text_and_only_tls_1_2_is_served() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "ssl.keystore.location=".to_string(),
        format!("ssl.keystore.certificate.chain={}", pki.server_chain_pem),
        format!("ssl.keystore.key={}", pki.server_key_pem),
        "ssl.enabled.protocols=TLSv1.2".to_string(),
    ];
    let b = start(&pki, &dir, &extra).await;
    let ssl = ssl_addr(&b);
    let tcp = tokio::net::TcpStream::connect(ssl).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&pki, false)).connect(ServerName::try_from("localhost").unwrap(), tcp).await.expect("TLS 1.2 handshake");
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let mut c = Client::over(tls);
    assert_eq!(c.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    b.stop().await;
}

/// With an authorizer, an mTLS client is the principal its certificate names, as Kafka's DEFAULT
/// mapping rule gives it: `User:` and the subject in RFC 2253 (`User:CN=wire-test-client`), not
/// ANONYMOUS, and the ACLs apply to that principal.
#[tokio::test]
async fn an_mtls_clients_principal_is_its_certificate_subject_for_the_acls() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "listener.name.ssl.ssl.client.auth=required".to_string(),
        "listener.name.ssl.ssl.truststore.type=PEM".to_string(),
        format!("listener.name.ssl.ssl.truststore.certificates={}", pki.ca_pem),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        // The PLAINTEXT listener's clients administer the test.
        "super.users=User:ANONYMOUS".to_string(),
    ];
    let b = start(&pki, &dir, &extra).await;
    let mut admin = b.client().await;
    let t = create_topics_request::CreatableTopic::default().with_name(name("mtls")).with_num_partitions(1).with_replication_factor(1);
    assert_eq!(admin.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    let mut c = tls_connect(&pki, ssl_addr(&b), true).await.expect("mTLS connect");
    assert_eq!(produce(&mut c, "mtls", batch(2, 1_700_000_000_000, Compression::None)).await, 29, "no ACL for the certificate's principal");
    let acl = create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("mtls"))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:CN=wire-test-client"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(4)
        .with_permission_type(3);
    let made = admin.send(&CreateAclsRequest::default().with_creations(vec![acl]), 3).await;
    assert_eq!(made.results[0].error_code, 0);
    assert_eq!(produce(&mut c, "mtls", batch(2, 1_700_000_000_000, Compression::None)).await, 0, "WRITE granted to User:CN=wire-test-client");
    b.stop().await;
}

/// `ssl.principal.mapping.rules` (KIP-371): the listener's rules turn the certificate subject
/// `CN=Alice,OU=eng` into `User:alice`, whom the ACLs then name; a subject no rule applies to
/// fails the client's authentication (the connection is closed).
#[tokio::test]
async fn a_mapping_rule_makes_an_mtls_client_the_user_its_acls_name() {
    let pki = make_pki_for_client(&[(rcgen::DnType::OrganizationalUnitName, "eng"), (rcgen::DnType::CommonName, "Alice")]);
    let dir = tempfile::tempdir().unwrap();
    let mtls = [
        "listener.name.ssl.ssl.client.auth=required".to_string(),
        "listener.name.ssl.ssl.truststore.type=PEM".to_string(),
        format!("listener.name.ssl.ssl.truststore.certificates={}", pki.ca_pem),
    ];
    let mut extra = mtls.to_vec();
    extra.extend([
        "listener.name.ssl.ssl.principal.mapping.rules=RULE:^CN=([^,]+),OU=ops$/ops-$1/, RULE:^CN=([^,]+),OU=eng$/$1/L, DEFAULT".to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        "super.users=User:ANONYMOUS".to_string(),
    ]);
    let b = start(&pki, &dir, &extra).await;
    let mut admin = b.client().await;
    let t = create_topics_request::CreatableTopic::default().with_name(name("mapped")).with_num_partitions(1).with_replication_factor(1);
    assert_eq!(admin.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    let mut c = tls_connect(&pki, ssl_addr(&b), true).await.expect("mTLS connect");
    assert_eq!(produce(&mut c, "mapped", batch(2, 1_700_000_000_000, Compression::None)).await, 29, "no ACL for User:alice yet");
    let acl = create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("mapped"))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:alice"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(4)
        .with_permission_type(3);
    assert_eq!(admin.send(&CreateAclsRequest::default().with_creations(vec![acl]), 3).await.results[0].error_code, 0);
    assert_eq!(produce(&mut c, "mapped", batch(2, 1_700_000_000_000, Compression::None)).await, 0, "WRITE granted to User:alice, the mapped name");
    b.stop().await;

    // Rules without DEFAULT that do not apply: the client is refused.
    let dir = tempfile::tempdir().unwrap();
    let mut extra = mtls.to_vec();
    extra.push("listener.name.ssl.ssl.principal.mapping.rules=RULE:^CN=([^,]+),OU=ops$/$1/".to_string());
    let b = start(&pki, &dir, &extra).await;
    let mut c = tls_connect(&pki, ssl_addr(&b), true).await.expect("the handshake itself succeeds");
    let frame = c.encode_request(&ApiVersionsRequest::default(), 3);
    c.send_raw(&frame).await;
    assert!(closed_after_alert(&mut c).await, "no rule applies to CN=Alice,OU=eng: the connection is closed unanswered");
    b.stop().await;
}

/// Connects over TLS (no client certificate): the client, and the serial number of the
/// certificate the broker presented.
async fn tls_connect_serial(pki: &Pki, addr: SocketAddr) -> (Client, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(client_config(pki, false));
    let tls = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("handshake");
    let der = tls.get_ref().1.peer_certificates().expect("server certificate")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("X.509");
    (Client::over(tls), cert.raw_serial().to_vec())
}

/// Writes the broker's key store (key then chain) to `path`.
fn write_key_store(path: &std::path::Path, (chain, key): &(String, String)) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{key}{chain}")).expect("key store");
    std::fs::rename(&tmp, path).expect("key store in place");
}

/// New connections until one is served certificate `serial`, within 10 s.
async fn wait_for_serial(pki: &Pki, addr: SocketAddr, serial: u8) -> Client {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (c, got) = tls_connect_serial(pki, addr).await;
        if got == [serial] {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "still served serial {got:?}, expected [{serial}]");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A certificate manager renews the key store file in place: the listener's check
/// (`fjord.ssl.reload.check.interval.ms`) reloads it, new connections get the new certificate and
/// the connection opened before keeps being served on its session. A renewed file with another
/// subject is refused and the listener keeps serving the certificate it has.
#[tokio::test]
async fn a_renewed_key_store_file_is_served_to_new_connections_and_open_ones_are_untouched() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let b = start(&pki, &dir, &["fjord.ssl.reload.check.interval.ms=100".to_string()]).await;
    let (mut before, serial) = tls_connect_serial(&pki, ssl_addr(&b)).await;
    assert_eq!(serial, [1]);
    let (ca, ca_key) = test_ca(&pki.ca_key_pem);
    write_key_store(&dir.path().join("broker.pem"), &broker_certificate(&ca, &ca_key, "rcgen self signed cert", 2));
    let started = std::time::Instant::now();
    let mut after = wait_for_serial(&pki, ssl_addr(&b), 2).await;
    eprintln!("renewed certificate served after {} ms", started.elapsed().as_millis());
    assert_eq!(before.send(&ApiVersionsRequest::default(), 3).await.error_code, 0, "the connection opened before the renewal is served");
    assert_eq!(after.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    // Another subject (ssl.allow.dn.changes=false): refused, serial 2 stays.
    write_key_store(&dir.path().join("broker.pem"), &broker_certificate(&ca, &ca_key, "someone else", 3));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(tls_connect_serial(&pki, ssl_addr(&b)).await.1, [2], "a certificate with another subject is not taken");
    b.stop().await;
}

/// Kafka's way to rotate a listener's certificate: IncrementalAlterConfigs of
/// `listener.name.ssl.ssl.keystore.location` for the broker. The new store is checked first (a
/// different subject is INVALID_REQUEST with SslFactory's reason, validate_only changes nothing),
/// then served to new connections while open ones keep theirs.
#[tokio::test]
async fn altering_the_key_store_location_reloads_the_certificate_after_kafkas_checks() {
    key_store_rotation(&[]).await;
}

/// The same on a node of a metadata quorum (of one voter): the change goes through the controller
/// into the metadata log and the node's publisher reloads the store; the same location named
/// again (nothing new for the log) still reloads the renewed file on the node that received it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_quorum_altering_the_key_store_location_reloads_through_the_metadata_log() {
    let port = common::free_port();
    let quorum = [
        "node.id=1".to_string(),
        format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT".to_string(),
        "controller.listener.names=CONTROLLER".to_string(),
        format!("controller.quorum.voters=1@127.0.0.1:{port}"),
    ];
    key_store_rotation(&quorum).await;
}

async fn key_store_rotation(extra: &[String]) {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let mut o = vec!["fjord.ssl.reload.check.interval.ms=0".to_string()];
    o.extend(extra.iter().cloned());
    let b = start(&pki, &dir, &o).await;
    assert_eq!(b.running.as_ref().unwrap().broker.cluster.is_some(), !extra.is_empty(), "a quorum node when asked for");
    let mut admin = b.client().await;
    let (mut before, serial) = tls_connect_serial(&pki, ssl_addr(&b)).await;
    assert_eq!(serial, [1]);
    let (ca, ca_key) = test_ca(&pki.ca_key_pem);
    let (other, renewed) = (dir.path().join("other.pem"), dir.path().join("renewed.pem"));
    write_key_store(&other, &broker_certificate(&ca, &ca_key, "someone else", 3));
    write_key_store(&renewed, &broker_certificate(&ca, &ca_key, "rcgen self signed cert", 2));
    let (code, message) = alter_broker_config(&mut admin, "ssl.keystore.location", &renewed.display().to_string(), false).await;
    assert_eq!(code, 42, "{message:?}");
    assert!(message.as_deref().unwrap_or("").contains("only per-listener using the listener prefix"), "{message:?}");
    let (code, message) = alter_broker_config(&mut admin, "listener.name.ssl.ssl.keystore.location", &other.display().to_string(), false).await;
    assert_eq!(code, 42, "{message:?}");
    assert!(message.as_deref().unwrap_or("").contains("Keystore DistinguishedName does not match"), "{message:?}");
    assert_eq!(alter_broker_config(&mut admin, "listener.name.ssl.ssl.keystore.location", &renewed.display().to_string(), true).await.0, 0, "validate_only accepts");
    assert_eq!(tls_connect_serial(&pki, ssl_addr(&b)).await.1, [1], "validate_only changes nothing");
    assert_eq!(alter_broker_config(&mut admin, "listener.name.ssl.ssl.keystore.location", &renewed.display().to_string(), false).await.0, 0);
    let (mut after, serial) = tls_connect_serial(&pki, ssl_addr(&b)).await;
    assert_eq!(serial, [2], "new connections get the new certificate at once");
    assert_eq!(before.send(&ApiVersionsRequest::default(), 3).await.error_code, 0, "the connection opened before is untouched");
    assert_eq!(after.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    // The same location again, the file renewed meanwhile: reloaded, as Kafka reloads it.
    write_key_store(&renewed, &broker_certificate(&ca, &ca_key, "rcgen self signed cert", 4));
    assert_eq!(alter_broker_config(&mut admin, "listener.name.ssl.ssl.keystore.location", &renewed.display().to_string(), false).await.0, 0);
    assert_eq!(tls_connect_serial(&pki, ssl_addr(&b)).await.1, [4]);
    b.stop().await;
}
