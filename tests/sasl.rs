//! SASL listeners: a broker with PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners on 127.0.0.1:0
//! (the TLS certificate made here with rcgen, never a committed key), spoken to with the raw test
//! client. Proves PLAIN and SCRAM-SHA-256/512 over SaslHandshake v1 + SaslAuthenticate and over v0
//! raw tokens, Kafka's errors for wrong passwords and unknown mechanisms, that nothing but the SASL
//! APIs and ApiVersions is served before authentication, KIP-368 session expiry and
//! re-authentication, the pre-authentication frame bound, and that other connections keep working.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use hmac::{Hmac, Mac};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncWriteExt;

const JAAS: &str = r#"listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";"#;

/// A broker with PLAINTEXT, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and SASL_SSL
/// (the same mechanisms) listeners; returns it with the CA certificate of its TLS listener.
/// A CA made here and a certificate it signed for `localhost`: (CA PEM, certificate PEM, key).
fn localhost_certificate() -> (String, String, rcgen::KeyPair) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params").signed_by(&key, &ca, &ca_key).expect("cert");
    (ca.pem(), cert.pem(), key)
}

async fn start(extra: &[&str]) -> (TestBroker, String) {
    let (ca_pem, cert_pem, key) = localhost_certificate();
    let chain = format!("{cert_pem}{ca_pem}");
    let mut o = vec![
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL".to_string(),
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_string(),
        JAAS.to_string(),
        JAAS.replace("sasl_plaintext", "sasl_ssl"),
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.certificate.chain={chain}"),
        format!("ssl.keystore.key={}", key.serialize_pem()),
        "connection.failed.authentication.delay.ms=300".to_string(),
        "num.partitions=1".to_string(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    let o: Vec<&str> = o.iter().map(String::as_str).collect();
    (TestBroker::start(&o).await, ca_pem)
}

fn addr(b: &TestBroker, listener: &str) -> SocketAddr {
    b.running.as_ref().unwrap().listener_addr(listener).expect("listener")
}

async fn tls_connect(ca_pem: &str, addr: SocketAddr) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA")).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(fjord::server::tls::ring_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("TLS handshake");
    Client::over(tls)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn handshake(c: &mut Client, mechanism: &str, version: i16) -> SaslHandshakeResponse {
    c.send(&SaslHandshakeRequest::default().with_mechanism(s(mechanism)), version).await
}

async fn authenticate(c: &mut Client, token: &[u8]) -> SaslAuthenticateResponse {
    c.send(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)), 2).await
}

async fn plain(c: &mut Client, user: &str, password: &str) -> SaslAuthenticateResponse {
    let h = handshake(c, "PLAIN", 1).await;
    assert_eq!(h.error_code, 0);
    authenticate(c, format!("\0{user}\0{password}").as_bytes()).await
}

#[derive(Clone, Copy, PartialEq)]
enum Sha {
    S256,
    S512,
}

fn mac(sha: Sha, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match sha {
        Sha::S256 => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        Sha::S512 => {
            let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn salted(sha: Sha, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    match sha {
        Sha::S256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations).to_vec(),
        Sha::S512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, iterations).to_vec(),
    }
}

/// The client side of a SCRAM exchange (RFC 5802): its first message (and the bare part).
fn scram_first(user: &str) -> (String, Vec<u8>) {
    let bare = format!("n={user},r=clientnonce{}", rand_suffix());
    let first = format!("n,,{bare}").into_bytes();
    (bare, first)
}

/// The client's final message for the server's first one, and the server final message a
/// broker that knows the credential must answer.
fn scram_final(sha: Sha, password: &str, bare: &str, server_first: &[u8]) -> (Vec<u8>, String) {
    let server_first = std::str::from_utf8(server_first).unwrap();
    let attrs: std::collections::BTreeMap<&str, &str> = server_first.split(',').filter_map(|a| a.split_once('=')).collect();
    assert!(attrs["r"].starts_with(&bare[bare.find("r=").unwrap() + 2..]), "the server nonce extends the client's");
    let salted = salted(sha, password, &B64.decode(attrs["s"]).unwrap(), attrs["i"].parse().unwrap());
    let client_key = mac(sha, &salted, b"Client Key");
    let stored_key = match sha {
        Sha::S256 => Sha256::digest(&client_key).to_vec(),
        Sha::S512 => Sha512::digest(&client_key).to_vec(),
    };
    let without_proof = format!("c=biws,r={}", attrs["r"]);
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let signature = mac(sha, &stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    let expected = format!("v={}", B64.encode(mac(sha, &mac(sha, &salted, b"Server Key"), auth_message.as_bytes())));
    (format!("{without_proof},p={}", B64.encode(proof)).into_bytes(), expected)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// SCRAM over SaslHandshake v1 and SaslAuthenticate; Err(error code, message) on failure.
async fn scram(c: &mut Client, sha: Sha, user: &str, password: &str) -> Result<i64, (i16, String)> {
    let mechanism = if sha == Sha::S256 { "SCRAM-SHA-256" } else { "SCRAM-SHA-512" };
    assert_eq!(handshake(c, mechanism, 1).await.error_code, 0);
    let fail = |r: SaslAuthenticateResponse| (r.error_code, r.error_message.map(|m| m.to_string()).unwrap_or_default());
    let (bare, first) = scram_first(user);
    let r = authenticate(c, &first).await;
    if r.error_code != 0 {
        return Err(fail(r));
    }
    let (fin, expected) = scram_final(sha, password, &bare, &r.auth_bytes);
    let r = authenticate(c, &fin).await;
    if r.error_code != 0 {
        return Err(fail(r));
    }
    assert_eq!(String::from_utf8(r.auth_bytes.to_vec()).unwrap(), expected, "the broker proves it knows the credential");
    Ok(r.session_lifetime_ms)
}

/// Stores a SCRAM credential through AlterUserScramCredentials (on the PLAINTEXT listener).
async fn add_scram_user(b: &TestBroker, sha: Sha, user: &str, password: &str) {
    let salt = b"wire-test-salt-0123".to_vec();
    let u = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(if sha == Sha::S256 { 1 } else { 2 })
        .with_iterations(4096)
        .with_salted_password(Bytes::from(salted(sha, password, &salt, 4096)))
        .with_salt(Bytes::from(salt));
    let mut c = b.client().await;
    let r = c.send(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]), 0).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
}

fn name(t: &str) -> TopicName {
    TopicName(s(t))
}

async fn produce_and_fetch(c: &mut Client, topic: &str) {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1);
    let created = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(created.topics[0].error_code, 0);
    let records = batch(100, 1_700_000_000_000, Compression::None);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records.clone()))])]);
    assert_eq!(c.send(&req, 9).await.responses[0].partition_responses[0].error_code, 0);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)])]);
    let resp = c.send(&req, 12).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.records.as_ref().map(|r| r.len()), Some(records.len()), "the batch comes back whole");
}

#[tokio::test]
async fn plain_on_sasl_plaintext_and_scram_on_sasl_ssl_authenticate_and_then_produce_and_fetch() {
    let (b, ca) = start(&[]).await;
    add_scram_user(&b, Sha::S256, "carol", "carol-pw").await;
    add_scram_user(&b, Sha::S512, "dave", "dave-pw").await;

    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    // ApiVersions is served before authentication, with the SASL APIs in it.
    let versions = c.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(versions.error_code, 0);
    let range = |k: ApiKey| versions.api_keys.iter().find(|a| a.api_key == k as i16).map(|a| (a.min_version, a.max_version));
    assert_eq!((range(ApiKey::SaslHandshake), range(ApiKey::SaslAuthenticate)), (Some((0, 1)), Some((0, 2))));
    let h = handshake(&mut c, "PLAIN", 1).await;
    assert_eq!(h.error_code, 0);
    assert_eq!(h.mechanisms.iter().map(|m| m.to_string()).collect::<Vec<_>>(), ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    let r = authenticate(&mut c, b"\0alice\0alice-secret").await;
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 0), "no session lifetime without connections.max.reauth.ms");
    produce_and_fetch(&mut c, "plain-topic").await;
    // Once authenticated, the SASL APIs are answered as Kafka's handlers answer them.
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 34);
    let again = authenticate(&mut c, b"\0alice\0alice-secret").await;
    assert_eq!((again.error_code, again.error_message.as_deref()), (34, Some("SaslAuthenticate request received after successful authentication")));
    produce_and_fetch(&mut c, "plain-topic-2").await;

    let mut t = tls_connect(&ca, addr(&b, "SASL_SSL")).await;
    assert_eq!(scram(&mut t, Sha::S256, "carol", "carol-pw").await, Ok(0));
    produce_and_fetch(&mut t, "scram-topic").await;
    let mut t = tls_connect(&ca, addr(&b, "SASL_SSL")).await;
    assert_eq!(scram(&mut t, Sha::S512, "dave", "dave-pw").await, Ok(0));
    produce_and_fetch(&mut t, "scram512-topic").await;
    // SCRAM on SASL_PLAINTEXT and PLAIN on SASL_SSL as well.
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(scram(&mut c, Sha::S512, "dave", "dave-pw").await, Ok(0));
    let mut t = tls_connect(&ca, addr(&b, "SASL_SSL")).await;
    assert_eq!(plain(&mut t, "bob", "bob-secret").await.error_code, 0);
    produce_and_fetch(&mut t, "plain-ssl-topic").await;
    // On the PLAINTEXT listener the SASL APIs answer ILLEGAL_SASL_STATE and the connection stays.
    let mut p = b.client().await;
    assert_eq!(handshake(&mut p, "PLAIN", 1).await.error_code, 34);
    produce_and_fetch(&mut p, "plaintext-topic").await;
    b.stop().await;
}

#[tokio::test]
async fn a_wrong_password_gets_58_after_the_delay_and_a_closed_connection_while_others_keep_working() {
    let (b, ca) = start(&[]).await;
    add_scram_user(&b, Sha::S256, "carol", "carol-pw").await;
    let mut good = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(plain(&mut good, "alice", "alice-secret").await.error_code, 0);

    let mut bad = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(handshake(&mut bad, "PLAIN", 1).await.error_code, 0);
    let started = Instant::now();
    let r = authenticate(&mut bad, b"\0alice\0not-the-secret").await;
    assert!(started.elapsed() >= Duration::from_millis(250), "the failure is held back connection.failed.authentication.delay.ms: {:?}", started.elapsed());
    assert_eq!((r.error_code, r.error_message.as_deref()), (58, Some("Authentication failed: Invalid username or password")));
    assert!(bad.is_closed().await, "closed after a failed authentication");

    let mut unknown = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(plain(&mut unknown, "mallory", "alice-secret").await.error_code, 58);
    assert!(unknown.is_closed().await);

    let mut t = tls_connect(&ca, addr(&b, "SASL_SSL")).await;
    let (code, message) = scram(&mut t, Sha::S256, "carol", "wrong").await.expect_err("a wrong SCRAM password");
    assert_eq!((code, message.as_str()), (58, "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"));
    assert!(t.is_closed().await);
    let mut t = tls_connect(&ca, addr(&b, "SASL_SSL")).await;
    let (code, _) = scram(&mut t, Sha::S512, "carol", "carol-pw").await.expect_err("no SHA-512 credential for carol");
    assert_eq!(code, 58);

    // The authenticated connection and new ones are untouched.
    produce_and_fetch(&mut good, "still-working").await;
    let mut t = tls_connect(&ca, addr(&b, "SASL_SSL")).await;
    assert_eq!(scram(&mut t, Sha::S256, "carol", "carol-pw").await, Ok(0));
    b.stop().await;
}

#[tokio::test]
async fn an_unknown_mechanism_gets_33_with_the_enabled_list_and_requests_before_authentication_close() {
    let (b, _ca) = start(&[]).await;
    let sasl = addr(&b, "SASL_PLAINTEXT");
    for mechanism in ["GSSAPI", "OAUTHBEARER", "plain"] {
        let mut c = Client::connect(sasl).await;
        let h = handshake(&mut c, mechanism, 1).await;
        assert_eq!(h.error_code, 33, "{mechanism}");
        assert_eq!(h.mechanisms.iter().map(|m| m.to_string()).collect::<Vec<_>>(), ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
        assert!(c.is_closed().await);
    }
    // Metadata before authentication: closed, not answered.
    let mut c = Client::connect(sasl).await;
    let frame = c.encode_request(&MetadataRequest::default().with_topics(Some(vec![])), 12);
    c.send_raw(&frame).await;
    assert!(c.read_frame().await.is_none(), "no answer before authentication");
    // Produce after the handshake but before SaslAuthenticate: closed too.
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
    let frame = c.encode_request(&MetadataRequest::default(), 12);
    c.send_raw(&frame).await;
    assert!(c.read_frame().await.is_none());
    // SaslAuthenticate before any handshake: closed.
    let mut c = Client::connect(sasl).await;
    let frame = c.encode_request(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0alice\0alice-secret")), 2);
    c.send_raw(&frame).await;
    assert!(c.read_frame().await.is_none());
    // A frame over sasl.server.max.receive.size before authentication: closed before it is read.
    let mut c = Client::connect(sasl).await;
    c.send_raw(&(524_289i32).to_be_bytes()).await;
    assert!(c.is_closed().await, "a pre-authentication frame is bounded by sasl.server.max.receive.size");
    // The listener still serves.
    let mut c = Client::connect(sasl).await;
    assert_eq!(plain(&mut c, "bob", "bob-secret").await.error_code, 0);
    b.stop().await;
}

/// Sends a raw SASL token (handshake v0): a 4-byte length, then the bytes; reads the answer.
async fn raw_token(c: &mut Client, token: &[u8]) -> Option<Bytes> {
    let mut b = BytesMut::new();
    b.put_i32(token.len() as i32);
    b.put_slice(token);
    c.stream.write_all(&b).await.ok()?;
    c.read_frame().await
}

#[tokio::test]
async fn a_v0_handshake_carries_raw_plain_and_scram_tokens() {
    let (b, ca) = start(&[]).await;
    add_scram_user(&b, Sha::S512, "dave", "dave-pw").await;
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(handshake(&mut c, "PLAIN", 0).await.error_code, 0);
    assert_eq!(raw_token(&mut c, b"\0alice\0alice-secret").await.as_deref(), Some(&b""[..]), "PLAIN's empty answer");
    produce_and_fetch(&mut c, "raw-plain").await;

    let mut t = tls_connect(&ca, addr(&b, "SASL_SSL")).await;
    assert_eq!(handshake(&mut t, "SCRAM-SHA-512", 0).await.error_code, 0);
    let (bare, first) = scram_first("dave");
    let server_first = raw_token(&mut t, &first).await.expect("raw server first message");
    let (fin, expected) = scram_final(Sha::S512, "dave-pw", &bare, &server_first);
    let server_final = raw_token(&mut t, &fin).await.expect("raw server final message");
    assert_eq!(String::from_utf8(server_final.to_vec()).unwrap(), expected);
    produce_and_fetch(&mut t, "raw-scram").await;

    // A wrong raw token: no answer can be framed, the connection closes.
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(handshake(&mut c, "PLAIN", 0).await.error_code, 0);
    assert!(raw_token(&mut c, b"\0alice\0wrong").await.is_none());
    b.stop().await;
}

#[tokio::test]
async fn a_session_expires_without_reauthentication_and_reauthentication_extends_it() {
    let (b, _ca) = start(&["listener.name.sasl_plaintext.connections.max.reauth.ms=1500"]).await;
    add_scram_user(&b, Sha::S256, "carol", "carol-pw").await;
    let sasl = addr(&b, "SASL_PLAINTEXT");
    let mut expiring = Client::connect(sasl).await;
    let r = plain(&mut expiring, "alice", "alice-secret").await;
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 1500));
    let mut renewing = Client::connect(sasl).await;
    assert_eq!(scram(&mut renewing, Sha::S256, "carol", "carol-pw").await, Ok(1500));
    produce_and_fetch(&mut renewing, "reauth").await;

    tokio::time::sleep(Duration::from_millis(900)).await;
    // Re-authentication before expiry: same mechanism and user, a new lifetime.
    assert_eq!(scram(&mut renewing, Sha::S256, "carol", "carol-pw").await, Ok(1500));
    tokio::time::sleep(Duration::from_millis(900)).await;
    // 1.8 s after its authentication the first session is over: its next request closes it.
    let frame = expiring.encode_request(&MetadataRequest::default().with_topics(Some(vec![])), 12);
    expiring.send_raw(&frame).await;
    assert!(expiring.read_frame().await.is_none(), "an expired session is closed on its next request");
    // The re-authenticated one is served.
    let m = renewing.send(&MetadataRequest::default().with_topics(Some(vec![])), 12).await;
    assert_eq!(m.brokers.len(), 1);
    // Re-authenticating as someone else fails.
    let mut c = Client::connect(sasl).await;
    assert_eq!(plain(&mut c, "alice", "alice-secret").await.error_code, 0);
    let r = plain(&mut c, "bob", "bob-secret").await;
    assert_eq!((r.error_code, r.error_message.as_deref()), (58, Some("Cannot change principals during re-authentication from User:alice: User:bob")));
    assert!(c.is_closed().await);
    b.stop().await;
}

/// An unsecured JWS (`alg` none, no signature) with these claims, as Kafka's unsecured login
/// module and librdkafka's `enable.sasl.oauthbearer.unsecure.jwt` make them.
fn unsecured_jws(claims: &str) -> String {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.", e(r#"{"alg":"none"}"#), e(claims))
}

#[tokio::test]
async fn oauthbearer_takes_a_valid_unsecured_token_and_answers_a_bad_one_with_the_rfc_7628_challenge() {
    let jaas = r#"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorRequiredScope="produce";"#;
    let (b, _ca) = start(&["sasl.enabled.mechanisms=PLAIN,OAUTHBEARER", jaas]).await;
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let first = |claims: String| format!("n,,\u{1}auth=Bearer {}\u{1}\u{1}", unsecured_jws(&claims)).into_bytes();

    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await.error_code, 0);
    let r = authenticate(&mut c, &first(format!(r#"{{"sub":"erin","exp":{},"scope":"produce consume"}}"#, now_s + 120))).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert!((100_000..=120_000).contains(&r.session_lifetime_ms), "the session ends with the token: {}", r.session_lifetime_ms);
    produce_and_fetch(&mut c, "oauth-topic").await;

    // Without the required scope: insufficient_scope, then the failure once the client says ^A.
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await.error_code, 0);
    let r = authenticate(&mut c, &first(format!(r#"{{"sub":"erin","exp":{},"scope":"consume"}}"#, now_s + 120))).await;
    assert_eq!((r.error_code, &r.auth_bytes[..]), (0, &br#"{"status":"insufficient_scope", "scope":"[produce]"}"#[..]));
    let r = authenticate(&mut c, &[1]).await;
    assert_eq!((r.error_code, r.error_message.as_deref()), (58, Some(r#"{"status":"insufficient_scope", "scope":"[produce]"}"#)));
    assert!(c.is_closed().await);
    b.stop().await;
}

/// A loopback https server (its certificate for `localhost` from a CA made here) answering every
/// GET with the current body. Returns its port, the CA's PEM and the body to change.
async fn jwks_server() -> (u16, String, Arc<std::sync::Mutex<Vec<u8>>>) {
    let (ca_pem, cert_pem, key) = localhost_certificate();
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("der")];
    let der_key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key der");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(fjord::server::tls::ring_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, der_key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let body = Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = body.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = socket.accept().await {
            let (acceptor, shared) = (acceptor.clone(), shared.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |_req| {
                    let body = shared.lock().unwrap().clone();
                    async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tls), service).await;
            });
        }
    });
    (port, ca_pem, body)
}

/// A P-256 signer and its public key as a JWK named `kid`.
fn es256_signer(kid: &str) -> (jsonwebtoken::EncodingKey, serde_json::Value) {
    let key = rcgen::KeyPair::generate().expect("key");
    let raw = key.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]), "kid": kid, "use": "sig", "alg": "ES256"});
    (jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()), jwk)
}

fn signed_first_message(key: &jsonwebtoken::EncodingKey, kid: &str, sub: &str) -> Vec<u8> {
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = jsonwebtoken::Header { kid: Some(kid.to_string()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256) };
    let claims = serde_json::json!({"sub": sub, "aud": "fjord", "iat": now_s, "exp": now_s + 300});
    let jwt = jsonwebtoken::encode(&header, &claims, key).expect("sign");
    format!("n,,\u{1}auth=Bearer {jwt}\u{1}\u{1}").into_bytes()
}

/// Signed JWTs checked against an https JWKS endpoint (Kafka's OAuthBearerValidatorCallbackHandler
/// with an https sasl.oauthbearer.jwks.endpoint.url): the endpoint's certificate is checked
/// against the JAAS options' trust store; a token of the served key authenticates; after the
/// identity provider rotates its key, the next refresh lets the new key's tokens in and the
/// old key's out.
#[tokio::test]
async fn oauthbearer_validates_signed_jwts_against_an_https_jwks_endpoint_and_follows_a_key_rotation() {
    let (port, ca_pem, body) = jwks_server().await;
    let (old_key, old_jwk) = es256_signer("k-old");
    let (new_key, new_jwk) = es256_signer("k-new");
    *body.lock().unwrap() = serde_json::to_vec(&serde_json::json!({ "keys": [old_jwk] })).unwrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("idp-ca.pem");
    std::fs::write(&ca_file, &ca_pem).expect("write CA");
    let jaas = format!(
        r#"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ssl.truststore.type="PEM" ssl.truststore.location="{}";"#,
        ca_file.display()
    );
    let url = format!("sasl.oauthbearer.jwks.endpoint.url=https://localhost:{port}/jwks");
    let (b, _ca) = start(&[
        "sasl.enabled.mechanisms=PLAIN,OAUTHBEARER",
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        &url,
        "sasl.oauthbearer.jwks.endpoint.refresh.ms=200",
        "sasl.oauthbearer.expected.audience=fjord",
        &jaas,
    ])
    .await;
    let try_token = async |message: Vec<u8>| {
        let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
        assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await.error_code, 0);
        let r = authenticate(&mut c, &message).await;
        (r.error_code == 0 && r.auth_bytes.is_empty()).then_some(c)
    };
    let mut c = try_token(signed_first_message(&old_key, "k-old", "grace")).await.expect("the served key's token authenticates");
    produce_and_fetch(&mut c, "jwt-topic").await;
    assert!(try_token(signed_first_message(&new_key, "k-new", "grace")).await.is_none(), "a key the endpoint does not serve yet");

    // The identity provider rotates its key.
    *body.lock().unwrap() = serde_json::to_vec(&serde_json::json!({ "keys": [new_jwk] })).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while try_token(signed_first_message(&new_key, "k-new", "grace")).await.is_none() {
        assert!(Instant::now() < deadline, "the rotated key was not fetched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(try_token(signed_first_message(&old_key, "k-old", "grace")).await.is_none(), "the retired key's tokens are refused");
    b.stop().await;
}
