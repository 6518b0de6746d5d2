//! The web console at `/`: three embedded static assets (HTML, CSS, vanilla JS; no build step)
//! and the small JSON API under `/api/` they call. Reads the broker in-process (through
//! [`super::collect`] and the coordinators' own read functions); every action that changes
//! something is the Kafka request of that API handed to its handler ([`crate::api::inprocess`]),
//! never a second implementation. With an authorizer, every API call is made as the logged-in
//! user's principal ([`super::login`]) and checked as Kafka checks the equivalent request; without
//! one the console is open. Must not act on a cross-site request, in read-only mode, or on an
//! unbounded size from a query string or body.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};
use serde_json::{json, Value};

use super::{HttpState, login};
use crate::api::inprocess::Guard;
use crate::api::{Session, inprocess, str_bytes, topic_name};
use crate::broker::Broker;
use crate::broker::acl::Operation;
use crate::types::TopicPartition;

/// Records one browse page returns at most (also the default page size is below it).
pub const BROWSE_RECORDS_MAX: usize = 500;
const BROWSE_RECORDS_DEFAULT: usize = 50;
/// Bytes of batches one browse reads from a partition's log at most.
const BROWSE_READ_MAX_BYTES: usize = 8 << 20;
/// A key, value or header value longer than this is cut in the answer (marked truncated).
const BROWSE_FIELD_SHOWN_MAX_BYTES: usize = 64 << 10;
/// Longest user name or password a login may send (bytes).
const LOGIN_FIELD_MAX_BYTES: usize = 1024;
/// The listener name of the console's in-process requests (their `Session`).
const CONSOLE_LISTENER: &str = "HTTP";
/// Largest JSON body a mutating request may send.
pub const CONSOLE_BODY_MAX_BYTES: usize = 1 << 20;
/// Headers one produced record may carry at most.
const PRODUCE_HEADERS_MAX: usize = 64;
/// Partitions a topic created from the console may have at most.
const CREATE_PARTITIONS_MAX: i64 = 1000;
/// The throughput chart: one sample of the all-topics counters this often, this many kept.
pub const THROUGHPUT_SAMPLE_INTERVAL_MS: u64 = 5000;
const THROUGHPUT_SAMPLES_MAX: usize = 120;
/// The header every mutating request must carry: a cross-site page cannot set it without a CORS
/// preflight, which this server never grants.
pub const CSRF_HEADER: &str = "x-fjord-console";

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_CSS: &str = include_str!("assets/console.css");
const CONSOLE_JS: &str = include_str!("assets/console.js");

/// One sample of the broker's all-topics counters.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at_ms: i64,
    bytes_in: u64,
    messages_in: u64,
    bytes_out: u64,
}

/// The last minutes of throughput samples (a bounded ring).
#[derive(Default)]
pub struct Throughput {
    samples: Mutex<VecDeque<Sample>>,
}

impl Throughput {
    /// Takes one sample of the broker's counters.
    pub fn sample(&self, broker: &Broker) {
        let (bytes_in, messages_in, bytes_out) = broker.metrics.topic_totals();
        let s = Sample { at_ms: crate::broker::replica_manager::now_ms(), bytes_in, messages_in, bytes_out };
        let mut ring = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == THROUGHPUT_SAMPLES_MAX {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// Per-second rates between consecutive samples.
    fn rates(&self) -> Vec<Value> {
        let ring = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter()
            .zip(ring.iter().skip(1))
            .map(|(a, b)| {
                let secs = ((b.at_ms - a.at_ms).max(1)) as f64 / 1000.0;
                let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
                json!({"t": b.at_ms, "bytes_in": rate(a.bytes_in, b.bytes_in), "messages_in": rate(a.messages_in, b.messages_in), "bytes_out": rate(a.bytes_out, b.bytes_out)})
            })
            .collect()
    }
}

/// Samples the throughput while the listener serves.
pub async fn sample_throughput(state: Arc<HttpState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(THROUGHPUT_SAMPLE_INTERVAL_MS));
    loop {
        tick.tick().await;
        if let Some(b) = state.broker.get() {
            state.throughput.sample(b);
        }
    }
}

/// Whether a path is the console's (its pages, assets or API).
pub fn is_console_path(path: &str) -> bool {
    matches!(path, "/" | "/index.html" | "/console.css" | "/console.js") || path.starts_with("/api/")
}

type Answer = Response<Full<Bytes>>;

/// What the console knows of the HTTP connection a request came on.
pub struct Context {
    /// `fjord.http.console.readonly`.
    pub readonly: bool,
    /// Served over TLS: the session cookie is `Secure`.
    pub https: bool,
    pub peer: SocketAddr,
    pub sessions: Arc<login::Sessions>,
}

/// Who makes an API call: its session as a Kafka connection's (the principal the ACLs are
/// checked for, the peer's address for host-based ACLs), and the logged-in user's name.
struct Caller {
    session: Session,
    user: Option<String>,
}

impl Caller {
    /// The ACL guard of the caller's principal; `None` without an authorizer (all allowed).
    fn guard<'a>(&self, broker: &'a Broker) -> Option<Guard<'a>> {
        inprocess::guard(broker, &self.session)
    }

    /// Whether the principal may perform `op` on topic `name`.
    fn topic(&self, broker: &Broker, op: Operation, name: &str) -> bool {
        self.guard(broker).is_none_or(|g| g.topic(op, name))
    }

    /// Whether the principal may perform `op` on group `id`.
    fn group(&self, broker: &Broker, op: Operation, id: &str) -> bool {
        self.guard(broker).is_none_or(|g| g.group(op, id))
    }
}

/// Serves one console request.
pub async fn handle(state: &Arc<HttpState>, ctx: &Context, req: Request<hyper::body::Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    match (path.as_str(), &parts.method) {
        ("/" | "/index.html", &Method::GET) => asset(INDEX_HTML, "text/html; charset=utf-8"),
        ("/console.css", &Method::GET) => asset(CONSOLE_CSS, "text/css; charset=utf-8"),
        ("/console.js", &Method::GET) => asset(CONSOLE_JS, "text/javascript; charset=utf-8"),
        ("/api/session", &Method::GET) => {
            let Some(broker) = state.broker.get().cloned() else { return error(StatusCode::SERVICE_UNAVAILABLE, "starting") };
            let user = caller(&broker, ctx, &parts.headers).and_then(|c| c.user);
            ok(json!({"login_required": broker.authorizer.is_some(), "user": user, "readonly": ctx.readonly}))
        }
        ("/api/login" | "/api/logout", &Method::POST) => {
            if let Some(refused) = cross_site(&parts.headers) {
                return refused;
            }
            let Some(broker) = state.broker.get().cloned() else { return error(StatusCode::SERVICE_UNAVAILABLE, "starting") };
            if path == "/api/logout" {
                return logout(ctx, &parts.headers);
            }
            let body = match json_body(body).await {
                Ok(b) => b,
                Err(refused) => return refused,
            };
            login(&broker, ctx, &body).await
        }
        (p, &Method::GET) if p.starts_with("/api/") => {
            let Some(broker) = state.broker.get().cloned() else { return error(StatusCode::SERVICE_UNAVAILABLE, "starting") };
            let Some(caller) = caller(&broker, ctx, &parts.headers) else { return unauthorized() };
            get(state, ctx.readonly, &broker, &caller, p, &query).await
        }
        (p, &Method::POST) if p.starts_with("/api/") => {
            if let Err(refused) = may_mutate(ctx.readonly, &parts.headers) {
                return refused;
            }
            let Some(broker) = state.broker.get().cloned() else { return error(StatusCode::SERVICE_UNAVAILABLE, "starting") };
            let Some(caller) = caller(&broker, ctx, &parts.headers) else { return unauthorized() };
            let body = match json_body(body).await {
                Ok(b) => b,
                Err(refused) => return refused,
            };
            post(&broker, &caller, p, &body).await
        }
        (p, _) if p.starts_with("/api/") => error(StatusCode::METHOD_NOT_ALLOWED, "GET reads, POST acts"),
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "only GET"),
    }
}

/// A request's JSON body, at most [`CONSOLE_BODY_MAX_BYTES`].
async fn json_body(body: hyper::body::Incoming) -> Result<Value, Answer> {
    let body = match Limited::new(body, CONSOLE_BODY_MAX_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body too large or unreadable")),
    };
    serde_json::from_slice::<Value>(&body).map_err(|_| error(StatusCode::BAD_REQUEST, "the body must be JSON"))
}

/// The caller of an API call. Without an authorizer the console is open (Kafka's ANONYMOUS, never
/// checked); with one, the request must carry a live session's cookie (None otherwise: 401), and
/// its user is the principal.
fn caller(broker: &Broker, ctx: &Context, headers: &HeaderMap) -> Option<Caller> {
    let mut session = Session::new(ctx.peer, Arc::from(CONSOLE_LISTENER));
    if broker.authorizer.is_none() {
        return Some(Caller { session, user: None });
    }
    let token = login::session_token(headers.get_all(hyper::header::COOKIE).iter().filter_map(|v| v.to_str().ok()));
    let who = ctx.sessions.get(token?, Instant::now())?;
    session.principal = who.principal;
    Some(Caller { session, user: Some(who.user) })
}

fn unauthorized() -> Answer {
    error(StatusCode::UNAUTHORIZED, "log in first: with an authorizer (authorizer.class.name) the console acts as the logged-in user")
}

/// `POST /api/login` `{"user": ..., "password": ...}`: checked against the broker's SCRAM
/// credentials and the SASL listeners' PLAIN users; on success a session cookie. A failure is
/// answered after `connection.failed.authentication.delay.ms`, as a failed SASL authentication
/// is, and logged with the user and the peer (never the password).
async fn login(broker: &Arc<Broker>, ctx: &Context, body: &Value) -> Answer {
    if broker.authorizer.is_none() {
        return error(StatusCode::BAD_REQUEST, "no login without an authorizer (authorizer.class.name): the console is open");
    }
    let field = |k: &str| body.get(k).and_then(Value::as_str).filter(|v| v.len() <= LOGIN_FIELD_MAX_BYTES).unwrap_or("").to_string();
    let (user, password) = (field("user"), field("password"));
    let (b, u) = (broker.clone(), user.clone());
    // PBKDF2 over the credential's iterations: off the async workers.
    let valid = tokio::task::spawn_blocking(move || login::check_password(&b.config, &b.scram, &u, &password)).await.unwrap_or(false);
    if !valid {
        tracing::info!(user = ?user, peer = %ctx.peer, "web console login failed: invalid username or password");
        tokio::time::sleep(Duration::from_millis(broker.config.connection_failed_authentication_delay_ms)).await;
        return error(StatusCode::UNAUTHORIZED, "Authentication failed: Invalid username or password");
    }
    match ctx.sessions.open(&user, Instant::now()) {
        Ok(token) => {
            tracing::info!(user = ?user, peer = %ctx.peer, "web console login");
            let mut r = ok(json!({"user": user}));
            if let Ok(v) = HeaderValue::from_str(&login::set_cookie(&token, ctx.sessions.lifetime(), ctx.https)) {
                r.headers_mut().insert(hyper::header::SET_COOKIE, v);
            }
            r
        }
        Err(login::OpenError::Full) => error(StatusCode::TOO_MANY_REQUESTS, "too many console sessions (fjord.http.console.sessions.max): try again when one ends"),
        Err(login::OpenError::Random) => error(StatusCode::INTERNAL_SERVER_ERROR, "no random source"),
    }
}

/// `POST /api/logout`: ends the request's session, and tells the browser to forget the cookie.
fn logout(ctx: &Context, headers: &HeaderMap) -> Answer {
    if let Some(token) = login::session_token(headers.get_all(hyper::header::COOKIE).iter().filter_map(|v| v.to_str().ok())) {
        ctx.sessions.close(token);
    }
    let mut r = ok(json!({}));
    if let Ok(v) = HeaderValue::from_str(&login::clear_cookie(ctx.https)) {
        r.headers_mut().insert(hyper::header::SET_COOKIE, v);
    }
    r
}

/// A mutating request: refused in read-only mode, and unless it comes from the console's page
/// ([`same_origin`]).
fn may_mutate(readonly: bool, headers: &HeaderMap) -> Result<(), Answer> {
    if readonly {
        return Err(error(StatusCode::FORBIDDEN, "the console is read-only (fjord.http.console.readonly=true)"));
    }
    cross_site(headers).map_or(Ok(()), Err)
}

/// A POST must carry the console's header and, when the browser names an origin, come from this
/// server's own origin: the refusal otherwise.
fn cross_site(headers: &HeaderMap) -> Option<Answer> {
    if !headers.contains_key(CSRF_HEADER) {
        return Some(error(StatusCode::FORBIDDEN, "missing the X-Fjord-Console header"));
    }
    if let Some(origin) = headers.get(hyper::header::ORIGIN) {
        let host = headers.get(hyper::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let origin_host = origin.to_str().unwrap_or("").split_once("://").map(|(_, h)| h).unwrap_or("");
        if host.is_empty() || origin_host != host {
            return Some(error(StatusCode::FORBIDDEN, "cross-origin request refused"));
        }
    }
    None
}

/// The topics the caller may DESCRIBE, as Metadata of every topic lists them.
fn visible_topics(broker: &Broker, caller: &Caller) -> Vec<Arc<crate::broker::metadata::TopicMeta>> {
    let g = caller.guard(broker);
    broker.metadata.topics().into_iter().filter(|t| g.as_ref().is_none_or(|g| g.topic(Operation::Describe, &t.name))).collect()
}

/// The groups the caller may DESCRIBE (as ListGroups shows them), each with the committed
/// offsets of the topics it may DESCRIBE only (as OffsetFetch of all offsets answers).
fn visible_groups(broker: &Broker, caller: &Caller, groups: Vec<crate::metrics::GroupView>) -> Vec<crate::metrics::GroupView> {
    let Some(g) = caller.guard(broker) else { return groups };
    groups
        .into_iter()
        .filter(|v| g.group(Operation::Describe, &v.group_id))
        .map(|mut v| {
            v.committed.retain(|(t, _, _)| g.topic(Operation::Describe, t));
            v
        })
        .collect()
}

async fn get(state: &Arc<HttpState>, readonly: bool, broker: &Arc<Broker>, caller: &Caller, path: &str, q: &BTreeMap<String, String>) -> Answer {
    match path {
        "/api/overview" => {
            let b = broker.clone();
            let Ok(mut snap) = tokio::task::spawn_blocking(move || super::collect::snapshot(&b)).await else { return error(StatusCode::INTERNAL_SERVER_ERROR, "collect failed") };
            let brokers: Vec<Value> = broker.live_brokers().into_iter().map(|b| json!({"id": b.id, "host": b.host, "port": b.port, "rack": b.rack})).collect();
            let topics = visible_topics(broker, caller);
            snap.partitions.retain(|p| topics.iter().any(|t| t.name == p.topic));
            let groups = visible_groups(broker, caller, std::mem::take(&mut snap.groups));
            ok(json!({
                "node_id": broker.config.node_id,
                "cluster": broker.cluster.is_some(),
                "readonly": readonly,
                "brokers": brokers,
                "topics": topics.len(),
                "partitions": topics.iter().map(|t| i64::from(t.partitions)).sum::<i64>(),
                "size_bytes": snap.partitions.iter().map(|p| p.size_bytes).sum::<u64>(),
                // Records of the clients' topics (not the coordinators' internal ones).
                "messages": snap.partitions.iter().filter(|p| topics.iter().any(|t| t.name == p.topic && !t.is_internal())).map(|p| (p.high_watermark - p.log_start_offset).max(0)).sum::<i64>(),
                "groups": groups.len(),
                "under_replicated": snap.partitions.iter().filter(|p| p.under_replicated).count(),
                "offline": snap.partitions.iter().filter(|p| p.offline).count(),
                "sample_interval_ms": THROUGHPUT_SAMPLE_INTERVAL_MS,
                "throughput": state.throughput.rates(),
            }))
        }
        "/api/topics" => {
            let b = broker.clone();
            let Ok(snap) = tokio::task::spawn_blocking(move || super::collect::snapshot(&b)).await else { return error(StatusCode::INTERNAL_SERVER_ERROR, "collect failed") };
            let mut out = Vec::new();
            for t in visible_topics(broker, caller) {
                let parts = snap.partitions.iter().filter(|p| p.topic == t.name);
                let (size, messages) = parts.fold((0u64, 0i64), |(s, m), p| (s + p.size_bytes, m + (p.high_watermark - p.log_start_offset).max(0)));
                out.push(json!({"name": t.name, "internal": t.is_internal(), "partitions": t.partitions, "size_bytes": size, "messages": messages}));
            }
            out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            ok(Value::Array(out))
        }
        "/api/topic" => {
            let name = q.get("name").map_or("", String::as_str);
            // As Metadata: a topic the principal may not describe is refused whether or not it exists.
            if !caller.topic(broker, Operation::Describe, name) {
                return refused(TOPIC_DENIED);
            }
            let Some(meta) = broker.metadata.topic(name) else { return error(StatusCode::NOT_FOUND, "no such topic") };
            let b = broker.clone();
            let Ok(snap) = tokio::task::spawn_blocking(move || super::collect::snapshot(&b)).await else { return error(StatusCode::INTERNAL_SERVER_ERROR, "collect failed") };
            let partitions: Vec<Value> = (0..meta.partitions)
                .map(|p| {
                    let state = crate::api::leader_and_isr(broker, &meta.name, p);
                    let local = snap.partitions.iter().find(|v| v.topic == meta.name && v.partition == p);
                    json!({
                        "partition": p, "leader": state.leader, "replicas": state.replicas, "isr": state.isr,
                        "log_start_offset": local.map(|v| v.log_start_offset), "log_end_offset": local.map(|v| v.log_end_offset),
                        "high_watermark": local.map(|v| v.high_watermark), "size_bytes": local.map(|v| v.size_bytes),
                    })
                })
                .collect();
            // As DescribeConfigs: the configs need DESCRIBE_CONFIGS on the topic.
            let (configs, configs_error) = if caller.topic(broker, Operation::DescribeConfigs, &meta.name) {
                let configs: Vec<Value> = inprocess::topic_configs(broker, &meta.configs)
                    .into_iter()
                    .map(|(name, value, source)| json!({"name": name, "value": value, "source": source}))
                    .collect();
                (configs, None)
            } else {
                (Vec::new(), Some(kafka_error_name(TOPIC_DENIED)))
            };
            ok(json!({"name": meta.name, "id": meta.id.to_string(), "internal": meta.is_internal(), "partitions": partitions, "configs": configs, "configs_error": configs_error}))
        }
        "/api/messages" => browse(broker, caller, q).await,
        "/api/groups" => {
            let groups = visible_groups(broker, caller, broker.groups.groups_for_metrics());
            let b = broker.clone();
            let Ok(snap) = tokio::task::spawn_blocking(move || super::collect::snapshot(&b)).await else { return error(StatusCode::INTERNAL_SERVER_ERROR, "collect failed") };
            let out: Vec<Value> = groups
                .iter()
                .map(|g| {
                    let lag: i64 = g.committed.iter().filter_map(|(t, p, c)| lag_of(&snap.partitions, t, *p, *c)).sum();
                    json!({"group_id": g.group_id, "state": g.state, "type": g.group_type, "partitions": g.committed.len(), "lag": lag})
                })
                .collect();
            ok(Value::Array(out))
        }
        "/api/group" => {
            let Some(id) = q.get("id").cloned() else { return error(StatusCode::BAD_REQUEST, "id is required") };
            // As DescribeGroups: refused whether or not the group exists.
            if !caller.group(broker, Operation::Describe, &id) {
                return refused(GROUP_DENIED);
            }
            group(broker, caller, &id).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such API"),
    }
}

/// Kafka's consumer lag: the high watermark minus the committed offset (0 when ahead); None
/// when the partition has no log here.
fn lag_of(partitions: &[crate::metrics::PartitionView], topic: &str, partition: i32, committed: i64) -> Option<i64> {
    partitions.iter().find(|v| v.topic == topic && v.partition == partition).map(|v| (v.high_watermark - committed.max(v.log_start_offset)).max(0))
}

async fn group(broker: &Arc<Broker>, caller: &Caller, id: &str) -> Answer {
    let Some(listed) = visible_groups(broker, caller, broker.groups.groups_for_metrics()).into_iter().find(|g| g.group_id == id) else { return error(StatusCode::NOT_FOUND, "no such group") };
    let b = broker.clone();
    let Ok(snap) = tokio::task::spawn_blocking(move || super::collect::snapshot(&b)).await else { return error(StatusCode::INTERNAL_SERVER_ERROR, "collect failed") };
    let (b, gid) = (broker.clone(), id.to_string());
    let (protocol_type, protocol, members) = if listed.group_type == "consumer" {
        // A KIP-848 group: its members and what each owns, as ConsumerGroupDescribe shows them.
        match broker.io_pool.run(move || b.groups.consumer_describe(&*b, &gid)).await {
            Ok(g) => {
                let members: Vec<Value> = g
                    .members
                    .into_iter()
                    .map(|m| {
                        json!({"member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id, "client_host": m.client_host,
                            "member_epoch": m.member_epoch, "subscribed": m.subscribed_topic_names, "assignment": topic_partitions(&m.assignment), "target_assignment": topic_partitions(&m.target_assignment)})
                    })
                    .collect();
                ("consumer".to_string(), g.assignor, members)
            }
            Err(_) => (String::new(), String::new(), Vec::new()),
        }
    } else {
        // The coordinator's DescribeGroups read of a classic group.
        match broker.io_pool.run(move || b.groups.describe(&*b, &gid)).await.ok().flatten() {
            Some(g) => {
                let members: Vec<Value> = g
                    .members
                    .into_iter()
                    .map(|m| json!({"member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id, "client_host": m.client_host, "assignment": assignment(&g.protocol_type, m.assignment)}))
                    .collect();
                (g.protocol_type, g.protocol, members)
            }
            None => (String::new(), String::new(), Vec::new()),
        }
    };
    let mut offsets: Vec<Value> = Vec::new();
    let mut total = 0i64;
    let mut committed = listed.committed.clone();
    committed.sort();
    for (t, p, c) in committed {
        let local = snap.partitions.iter().find(|v| v.topic == t && v.partition == p);
        let lag = lag_of(&snap.partitions, &t, p, c);
        total += lag.unwrap_or(0);
        offsets.push(json!({"topic": t, "partition": p, "committed": c, "high_watermark": local.map(|v| v.high_watermark), "lag": lag}));
    }
    ok(json!({"group_id": id, "state": listed.state, "type": listed.group_type, "protocol_type": protocol_type, "protocol": protocol, "members": members, "offsets": offsets, "lag": total}))
}

/// A KIP-848 member's partitions, as the page lists a classic member's.
fn topic_partitions(a: &crate::group::assignor::Assignment) -> Value {
    Value::Array(a.iter().map(|(topic, ps)| json!({"topic": topic, "partitions": ps})).collect())
}

/// A classic consumer member's assignment (the consumer protocol's encoding), as topic ->
/// partitions; empty for other protocols or what does not decode.
fn assignment(protocol_type: &str, bytes: Bytes) -> Value {
    if protocol_type != "consumer" {
        return json!([]);
    }
    // The pairs come topic by topic, in the assignment's order: regroup consecutive ones.
    let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
    for (topic, partition) in crate::protocol::consumer::assigned_partitions(bytes) {
        match topics.last_mut() {
            Some((t, ps)) if *t == topic => ps.push(partition),
            _ => topics.push((topic, vec![partition])),
        }
    }
    Value::Array(topics.into_iter().map(|(topic, partitions)| json!({"topic": topic, "partitions": partitions})).collect())
}

/// One page of records of a partition (or of every partition: `partition=-1`), newest first:
/// the last `limit` below the high watermark, or the first `limit` from `offset` or from the
/// first offset at or after `timestamp`.
async fn browse(broker: &Arc<Broker>, caller: &Caller, q: &BTreeMap<String, String>) -> Answer {
    // As Fetch: READ on the topic, checked before whether it exists.
    let name = q.get("topic").map_or("", String::as_str);
    if !caller.topic(broker, Operation::Read, name) {
        return refused(TOPIC_DENIED);
    }
    let Some(meta) = broker.metadata.topic(name) else { return error(StatusCode::NOT_FOUND, "no such topic") };
    let limit = q.get("limit").and_then(|v| v.parse::<usize>().ok()).unwrap_or(BROWSE_RECORDS_DEFAULT).clamp(1, BROWSE_RECORDS_MAX);
    let partition: i32 = q.get("partition").and_then(|v| v.parse().ok()).unwrap_or(-1);
    let offset: Option<i64> = q.get("offset").and_then(|v| v.parse().ok());
    let timestamp: Option<i64> = q.get("timestamp").and_then(|v| v.parse().ok());
    if partition >= meta.partitions || partition < -1 {
        return error(StatusCode::NOT_FOUND, "no such partition");
    }
    let partitions: Vec<i32> = if partition == -1 { (0..meta.partitions).collect() } else { vec![partition] };
    let (b, topic) = (broker.clone(), meta.name.clone());
    let read = tokio::task::spawn_blocking(move || {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for p in partitions {
            match read_partition(&b, &TopicPartition::new(topic.clone(), p), offset, timestamp, limit) {
                Ok(mut r) => records.append(&mut r),
                Err(e) => errors.push(json!({"partition": p, "error": e})),
            }
        }
        (records, errors)
    })
    .await;
    let Ok((mut records, errors)) = read else { return error(StatusCode::INTERNAL_SERVER_ERROR, "read failed") };
    // Newest first; across partitions by timestamp.
    records.sort_by(|a: &(i64, i32, i64, Value), b| (b.0, b.2).cmp(&(a.0, a.2)));
    if offset.is_some() || timestamp.is_some() {
        // From a position: the first `limit` after it, still shown newest first.
        records.sort_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
        records.truncate(limit);
        records.reverse();
    } else {
        records.truncate(limit);
    }
    ok(json!({"topic": meta.name, "limit": limit, "records": records.into_iter().map(|r| r.3).collect::<Vec<_>>(), "errors": errors}))
}

/// (timestamp, partition, offset, the record as JSON) of up to `limit` records of one partition.
fn read_partition(broker: &Broker, tp: &TopicPartition, offset: Option<i64>, timestamp: Option<i64>, limit: usize) -> Result<Vec<(i64, i32, i64, Value)>, String> {
    let offsets = broker.replicas.offsets(tp).map_err(|e| e.to_string())?;
    let (start, hw) = (offsets.log_start_offset, offsets.high_watermark);
    let from = match (offset, timestamp) {
        (Some(o), _) => o.max(start),
        (None, Some(ts)) => match broker.replicas.offset_for_timestamp(tp, ts).map_err(|e| e.to_string())? {
            Some((o, _)) => o.max(start),
            None => return Ok(Vec::new()),
        },
        (None, None) => (hw - limit as i64).max(start),
    };
    let mut out = Vec::new();
    let mut next = from;
    let mut budget = BROWSE_READ_MAX_BYTES;
    while next < hw && out.len() < limit && budget > 0 {
        let (_, mut data) = broker.replicas.read(tp, next, budget.min(1 << 20)).map_err(|e| e.to_string())?;
        if data.is_empty() {
            break;
        }
        budget = budget.saturating_sub(data.len());
        let before = next;
        while !data.is_empty() && out.len() < limit {
            let set = RecordBatchDecoder::decode(&mut data).map_err(|e| e.to_string())?;
            for r in set.records {
                next = next.max(r.offset + 1);
                if r.offset < from || r.control || r.offset >= hw || out.len() >= limit {
                    continue;
                }
                out.push((r.timestamp, tp.partition, r.offset, record_json(tp.partition, &r)));
            }
        }
        if next == before {
            break;
        }
    }
    Ok(out)
}

fn record_json(partition: i32, r: &Record) -> Value {
    let field = |b: &Option<Bytes>| match b {
        None => Value::Null,
        Some(b) => {
            let shown = &b[..b.len().min(BROWSE_FIELD_SHOWN_MAX_BYTES)];
            json!({"b64": base64::engine::general_purpose::STANDARD.encode(shown), "size": b.len(), "truncated": shown.len() < b.len()})
        }
    };
    let headers: Vec<Value> = r.headers.iter().map(|(k, v)| json!({"key": k.to_string(), "value": field(v)})).collect();
    json!({"partition": partition, "offset": r.offset, "timestamp": r.timestamp, "key": field(&r.key), "value": field(&r.value), "headers": headers})
}

async fn post(broker: &Arc<Broker>, caller: &Caller, path: &str, body: &Value) -> Answer {
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match path {
        "/api/topics/create" => {
            let name = s("name");
            let partitions = body.get("partitions").and_then(Value::as_i64).unwrap_or(-1);
            let rf = body.get("replication_factor").and_then(Value::as_i64).unwrap_or(-1);
            if !(-1..=CREATE_PARTITIONS_MAX).contains(&partitions) || partitions == 0 || !(-1..=i64::from(i16::MAX)).contains(&rf) || rf == 0 {
                return error(StatusCode::BAD_REQUEST, "partitions or replication_factor out of range");
            }
            let configs: Vec<create_topics_request::CreatableTopicConfig> = body
                .get("configs")
                .and_then(Value::as_object)
                .map(|m| m.iter().take(64).map(|(k, v)| create_topics_request::CreatableTopicConfig::default().with_name(str_bytes(k.clone())).with_value(v.as_str().map(|v| str_bytes(v.to_string())))).collect())
                .unwrap_or_default();
            let topic = create_topics_request::CreatableTopic::default().with_name(topic_name(name)).with_num_partitions(partitions as i32).with_replication_factor(rf as i16).with_configs(configs);
            let resp = inprocess::create_topics(broker, &caller.session, CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000)).await;
            let t = resp.topics.first();
            kafka_result(t.map_or(-1, |t| t.error_code), t.and_then(|t| t.error_message.as_ref().map(|m| m.to_string())), json!({}))
        }
        "/api/topics/delete" => {
            let req = DeleteTopicsRequest::default().with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(topic_name(s("name"))))]).with_timeout_ms(30_000);
            let resp = inprocess::delete_topics(broker, &caller.session, req).await;
            let r = resp.responses.first();
            kafka_result(r.map_or(-1, |r| r.error_code), r.and_then(|r| r.error_message.as_ref().map(|m| m.to_string())), json!({}))
        }
        "/api/produce" => produce(broker, caller, body).await,
        "/api/groups/reset" => reset(broker, caller, body).await,
        _ => error(StatusCode::NOT_FOUND, "no such API"),
    }
}

/// One record produced with acks=all.
async fn produce(broker: &Arc<Broker>, caller: &Caller, body: &Value) -> Answer {
    let topic = body.get("topic").and_then(Value::as_str).unwrap_or("").to_string();
    // As Produce: WRITE on the topic, before whether it exists (the request checks it again).
    if !caller.topic(broker, Operation::Write, &topic) {
        return refused(TOPIC_DENIED);
    }
    let Some(meta) = broker.metadata.topic(&topic) else { return error(StatusCode::NOT_FOUND, "no such topic") };
    let key = body.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()).map(|k| Bytes::from(k.to_string()));
    let value = body.get("value").and_then(Value::as_str).map(|v| Bytes::from(v.to_string()));
    // No partition given: where the Java producer puts the key (murmur2), else partition 0.
    let partition = match body.get("partition").and_then(Value::as_i64) {
        Some(p) if p >= 0 => p,
        _ => key.as_ref().map_or(0, |k| i64::from(crate::records::partitioner::partition_for_key(k, meta.partitions.max(1)))),
    };
    if partition >= i64::from(meta.partitions) {
        return error(StatusCode::BAD_REQUEST, "no such partition");
    }
    let mut record = crate::records::plain_record(0, crate::broker::replica_manager::now_ms(), key, value);
    if let Some(hs) = body.get("headers").and_then(Value::as_array) {
        if hs.len() > PRODUCE_HEADERS_MAX {
            return error(StatusCode::BAD_REQUEST, "too many headers");
        }
        for h in hs {
            let k = h.get("key").and_then(Value::as_str).unwrap_or("");
            let v = h.get("value").and_then(Value::as_str).map(|v| Bytes::from(v.to_string()));
            record.headers.insert(str_bytes(k.to_string()), v);
        }
    }
    let mut buf = bytes::BytesMut::new();
    if RecordBatchEncoder::encode(&mut buf, std::slice::from_ref(&record), &RecordEncodeOptions { version: 2, compression: Compression::None }).is_err() {
        return error(StatusCode::BAD_REQUEST, "cannot encode the record");
    }
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition as i32).with_records(Some(buf.freeze()))])]);
    let resp = inprocess::produce(broker, &caller.session, req).await;
    match resp.responses.first().and_then(|t| t.partition_responses.first()) {
        Some(p) => kafka_result(p.error_code, p.error_message.as_ref().map(|m| m.to_string()), json!({"partition": p.index, "offset": p.base_offset})),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "no answer"),
    }
}

/// Resets a group's committed offsets of a topic to earliest, latest or a timestamp: only an
/// empty group (no members), as Kafka's tools require; the commit is an OffsetCommit with no
/// member and generation -1, which the coordinator refuses for a group with members.
async fn reset(broker: &Arc<Broker>, caller: &Caller, body: &Value) -> Answer {
    let group = body.get("group").and_then(Value::as_str).unwrap_or("").to_string();
    let topic = body.get("topic").and_then(Value::as_str).unwrap_or("").to_string();
    let to = body.get("to").and_then(Value::as_str).unwrap_or("");
    // As OffsetCommit: READ on the group, then on the topic, before anything is read (the
    // request checks them again).
    if !caller.group(broker, Operation::Read, &group) {
        return refused(GROUP_DENIED);
    }
    if !caller.topic(broker, Operation::Read, &topic) {
        return refused(TOPIC_DENIED);
    }
    let Some(meta) = broker.metadata.topic(&topic) else { return error(StatusCode::NOT_FOUND, "no such topic") };
    if let Some(g) = broker.groups.groups_for_metrics().into_iter().find(|g| g.group_id == group)
        && g.state != "Empty"
    {
        return error(StatusCode::CONFLICT, &format!("the group is {}: stop its consumers first (only an empty group can be reset)", g.state));
    }
    let timestamp = body.get("timestamp").and_then(Value::as_i64);
    let (b, name, to, count) = (broker.clone(), meta.name.clone(), to.to_string(), meta.partitions);
    let targets = tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|p| {
                let tp = TopicPartition::new(name.clone(), p);
                let o = b.replicas.offsets(&tp).map_err(|e| e.to_string())?;
                match (to.as_str(), timestamp) {
                    ("earliest", _) => Ok((p, o.log_start_offset)),
                    ("latest", _) => Ok((p, o.high_watermark)),
                    ("timestamp", Some(ts)) => Ok((p, b.replicas.offset_for_timestamp(&tp, ts).map_err(|e| e.to_string())?.map_or(o.high_watermark, |(off, _)| off))),
                    _ => Err("to must be earliest, latest or timestamp (with a timestamp)".to_string()),
                }
            })
            .collect::<Result<Vec<(i32, i64)>, String>>()
    })
    .await;
    let targets = match targets {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "read failed"),
    };
    let parts = targets.iter().map(|(p, o)| offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o).with_committed_leader_epoch(-1)).collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(str_bytes(String::new()))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(topic_name(meta.name.clone())).with_partitions(parts)]);
    let resp = inprocess::offset_commit(broker, &caller.session, req).await;
    let code = resp.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| p.error_code).find(|c| *c != 0).unwrap_or(0);
    kafka_result(code, None, json!({"offsets": targets.iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect::<Vec<_>>()}))
}

const TOPIC_DENIED: i16 = kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();

/// Kafka's name of an error code, as its `Errors` enum spells it (`TOPIC_AUTHORIZATION_FAILED`).
fn kafka_error_name(code: i16) -> String {
    let Some(e) = kafka_protocol::error::ResponseError::try_from_code(code) else { return format!("UNKNOWN_ERROR_CODE_{code}") };
    let mut name = String::new();
    for (i, c) in format!("{e:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// An ACL refusal: 403 with Kafka's error.
fn refused(code: i16) -> Answer {
    kafka_result(code, None, json!({}))
}

/// A Kafka error code as the API's answer: 200 with `extra` on NONE, else 403 for an
/// authorization error and 400 for the others, with the error's name and code.
fn kafka_result(code: i16, message: Option<String>, extra: Value) -> Answer {
    use kafka_protocol::error::ResponseError as E;
    if code == 0 {
        return ok(extra);
    }
    let name = kafka_protocol::error::ResponseError::try_from_code(code).map_or(format!("error {code}"), |e| format!("{e:?}"));
    let text = match message {
        Some(m) if !m.is_empty() => format!("{name}: {m}"),
        _ => name,
    };
    let denied = [E::TopicAuthorizationFailed, E::GroupAuthorizationFailed, E::ClusterAuthorizationFailed, E::TransactionalIdAuthorizationFailed].iter().any(|e| e.code() == code);
    let status = if denied { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
    let mut r = json_response(status, json!({"error": text, "error_code": code, "error_name": kafka_error_name(code)}));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn asset(body: &'static str, content_type: &'static str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Scripts only from this server (no inline code), and never framed by another site.
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

fn ok(v: Value) -> Answer {
    json_response(StatusCode::OK, v)
}

fn error(status: StatusCode, message: &str) -> Answer {
    json_response(status, json!({"error": message}))
}

fn json_response(status: StatusCode, v: Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `a=1&b=x%20y` as a map (later keys win); bounded by hyper's request head limit.
fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&').filter(|kv| !kv.is_empty()).map(|kv| kv.split_once('=').unwrap_or((kv, ""))).map(|(k, v)| (percent_decode(k), percent_decode(v))).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) << 4 | hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_percent_and_plus() {
        let q = parse_query("topic=a%2Eb&id=my+group%21&bad=%zz&end=%4");
        assert_eq!(q["topic"], "a.b");
        assert_eq!(q["id"], "my group!");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(q["end"], "%4");
    }

    #[test]
    fn refusals_are_403_with_kafkas_error_name_and_other_errors_400() {
        assert_eq!(kafka_error_name(TOPIC_DENIED), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(kafka_error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(refused(GROUP_DENIED).status(), StatusCode::FORBIDDEN);
        assert_eq!(kafka_result(31, None, json!({})).status(), StatusCode::FORBIDDEN, "CLUSTER_AUTHORIZATION_FAILED");
        assert_eq!(kafka_result(36, Some("exists".into()), json!({})).status(), StatusCode::BAD_REQUEST);
        assert_eq!(kafka_result(0, None, json!({"a": 1})).status(), StatusCode::OK);
    }

    #[test]
    fn mutations_need_the_header_a_same_origin_and_a_writable_console() {
        let mut h = HeaderMap::new();
        assert!(may_mutate(false, &h).is_err(), "no header");
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert!(may_mutate(false, &h).is_ok());
        assert_eq!(may_mutate(true, &h).unwrap_err().status(), StatusCode::FORBIDDEN, "read-only");
        h.insert(hyper::header::HOST, HeaderValue::from_static("127.0.0.1:9644"));
        h.insert(hyper::header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(may_mutate(false, &h).is_err(), "cross-origin");
        h.insert(hyper::header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9644"));
        assert!(may_mutate(false, &h).is_ok());
    }
}
