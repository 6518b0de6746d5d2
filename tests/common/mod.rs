//! Wire-test support: a broker on 127.0.0.1:0 over a temp dir, and a minimal Kafka client that
//! speaks typed requests (kafka-protocol) or raw bytes. The broker is stopped by the test.
#![allow(dead_code)]

pub mod groups;

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fjord::node::RunningNode;
use fjord::config::Config;
use indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A free loopback port to name before a node binds it (a quorum's controller ports go into
/// every node's config before any node starts). Picked at random below the kernel's ephemeral
/// range (32768 and up here): a port the kernel hands out for `:0` can be taken, before the node
/// binds it, by the local end of any outgoing connection of a test running beside it, which made
/// cluster tests fail with AddrInUse under nextest's parallel load. Checked bindable now.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A broker's config on 127.0.0.1:`port` (0: any) with two log dirs, `a` and `b`, no HTTP
/// listener, plus `extra` properties.
pub fn two_dirs_config(a: &std::path::Path, b: &std::path::Path, port: u16, extra: &[&str]) -> Config {
    let mut o = vec![format!("listeners=PLAINTEXT://127.0.0.1:{port}"), format!("log.dirs={},{}", a.display(), b.display()), "fjord.http.listener=none".to_string()];
    o.extend(extra.iter().map(|e| e.to_string()));
    Config::load(None, &o).expect("test config")
}

pub struct TestBroker {
    pub running: Option<RunningNode>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    overrides: Vec<String>,
}

fn config(dir: &std::path::Path, port: u16, overrides: &[String]) -> Config {
    let mut o = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", dir.display()),
        "log.retention.check.interval.ms=100".to_string(),
        // Tests run in parallel: the HTTP listener on a port the kernel picks.
        "fjord.http.listener=127.0.0.1:0".to_string(),
    ];
    o.extend(overrides.iter().cloned());
    Config::load(None, &o).expect("test config")
}

impl TestBroker {
    pub async fn start(overrides: &[&str]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let running = fjord::node::start(config(dir.path(), 0, &overrides)).await.expect("broker starts");
        let addr = running.local_addr;
        TestBroker { running: Some(running), addr, dir, overrides }
    }

    /// Clean shutdown, then a fresh start on the same data dir and port.
    pub async fn restart(&mut self) {
        self.running.take().unwrap().shutdown().await;
        let running = fjord::node::start(config(self.dir.path(), self.addr.port(), &self.overrides)).await.expect("restart");
        self.running = Some(running);
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// PLAIN users of [`TestBroker::authorized`]'s SASL listener: admin (a super user), alice and bob.
pub const PLAIN_USERS_JAAS: &str = r#"listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";"#;

impl TestBroker {
    /// A broker with Kafka's StandardAuthorizer, a PLAINTEXT listener and a SASL_PLAINTEXT one
    /// whose PLAIN users are [`PLAIN_USERS_JAAS`]'s; `super_users` as Kafka's `super.users` value.
    pub async fn authorized(super_users: &str, extra: &[&str]) -> TestBroker {
        let super_users = format!("super.users={super_users}");
        let mut o = vec![
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            PLAIN_USERS_JAAS,
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            &super_users,
        ];
        o.extend(extra);
        TestBroker::start(&o).await
    }
}

/// A client's byte stream: a plain socket or a TLS session.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

pub struct Client {
    pub stream: Box<dyn Conn>,
    correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).await.unwrap())
    }

    /// A client over an established stream (a TLS session in tests/tls.rs).
    pub fn over(stream: impl Conn + 'static) -> Client {
        Client { stream: Box::new(stream), correlation_id: 0 }
    }

    /// The correlation id of the last request encoded.
    #[allow(dead_code)] // not every test binary pipelines
    pub fn correlation_id(&self) -> i32 {
        self.correlation_id
    }

    pub fn encode_request<R: Request>(&mut self, req: &R, version: i16) -> BytesMut {
        self.correlation_id += 1;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        let hv = key.request_header_version(version);
        let mut body = BytesMut::new();
        header.encode(&mut body, hv).unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        frame
    }

    /// Sends a typed request and decodes the typed response (checking the correlation id).
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        let frame = self.encode_request(req, version);
        self.stream.write_all(&frame).await.unwrap();
        self.stream.flush().await.unwrap();
        let mut resp = self.read_frame().await.expect("a response");
        let key = ApiKey::try_from(R::KEY).unwrap();
        let hv = if key == ApiKey::ApiVersions { 0 } else { key.response_header_version(version) };
        let header = ResponseHeader::decode(&mut resp, hv).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        R::Response::decode(&mut resp, version).unwrap()
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// Reads one response frame; None when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), self.stream.read_exact(&mut len)).await.expect("no hang");
        r.ok()?;
        let n = i32::from_be_bytes(len) as usize;
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// True when the broker closes the connection (EOF) within a few seconds.
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub fn record(offset: i64, ts: i64, key: &str, value: &[u8]) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder groups records into one batch while offset - sequence stays constant;
        // this keeps one batch with baseSequence -1 (not idempotent).
        sequence: offset as i32 - 1,
        timestamp: ts,
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value)),
        headers: IndexMap::new(),
    }
}

/// One v2 batch of `n` records with timestamps ts0, ts0+1, ...
pub fn batch(n: usize, ts0: i64, compression: Compression) -> Bytes {
    let recs: Vec<Record> = (0..n).map(|i| record(i as i64, ts0 + i as i64, &format!("k{i}"), format!("value-{i}").as_bytes())).collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression }).unwrap();
    buf.freeze()
}

/// A batch from an idempotent producer, stamped now as a client stamps it (a producer whose last
/// batch is older than producer.id.expiration.ms is forgotten, at the latest at a restart).
pub fn idempotent_batch(n: usize, producer_id: i64, epoch: i16, first_seq: i32) -> Bytes {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let recs = (0..n).map(|i| record(i as i64, now_ms + i as i64, "k", b"v")).collect();
    producer_batch(recs, (producer_id, epoch, first_seq), false)
}

/// One uncompressed batch of `recs` from a producer (id, epoch, first sequence), in a
/// transaction or not.
pub fn producer_batch(mut recs: Vec<Record>, (producer_id, epoch, first_seq): (i64, i16, i32), transactional: bool) -> Bytes {
    for (i, r) in recs.iter_mut().enumerate() {
        r.transactional = transactional;
        r.producer_id = producer_id;
        r.producer_epoch = epoch;
        r.sequence = first_seq + i as i32;
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

pub fn get_i32(b: &mut Bytes) -> i32 {
    b.get_i32()
}

/// One HTTP/1.1 request to the broker's HTTP listener on its own connection: (status, body).
pub async fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect to the HTTP listener");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut raw)).await.expect("an answer in time").expect("read");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, body.to_string())
}

/// GET `path`: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path).await
}

/// IncrementalAlterConfigs SET of `key` to `value` on broker resource "1" (this broker):
/// (error code, message).
pub async fn alter_broker_config(c: &mut Client, key: &str, value: &str, validate_only: bool) -> (i16, Option<String>) {
    use kafka_protocol::messages::{IncrementalAlterConfigsRequest, incremental_alter_configs_request};
    let op = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(StrBytes::from_string(key.to_string()))
        .with_config_operation(0)
        .with_value(Some(StrBytes::from_string(value.to_string())));
    let req = IncrementalAlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("1"))
        .with_configs(vec![op])]);
    let r = c.send(&req, 1).await;
    (r.responses[0].error_code, r.responses[0].error_message.as_ref().map(|m| m.to_string()))
}

/// Polls `f` every 50 ms until it gives a value, for at most 30 s (generous: a loaded machine runs
/// many cluster tests at once); panics naming `what` after that.
pub async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
