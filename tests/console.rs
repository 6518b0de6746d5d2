//! Wire tests of the web console on the HTTP listener: its pages and assets answer, its JSON API
//! creates a topic, produces a record, browses it back (newest first, from an offset, bounded),
//! shows a group's lag and resets it, deletes the topic; mutating calls need the console's header
//! and a same-origin request, and read-only mode refuses them all (403). With an authorizer: a
//! login (PLAIN or SCRAM user), sessions bounded and expiring, every call under the user's ACLs.
//! Over HTTPS: the console and /metrics, and a plain HTTP client refused.

mod common;

use std::net::SocketAddr;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn http_addr(b: &TestBroker) -> SocketAddr {
    b.running.as_ref().and_then(|r| r.http_addr).expect("the test broker has an HTTP listener")
}

/// GET `path` as JSON: (status, body).
async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http_get(addr, path).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}")))
}

/// POST a JSON body with the given extra header lines: (status, body as JSON).
async fn post_with(addr: SocketAddr, path: &str, body: &Value, extra_headers: &str) -> (u16, Value) {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.to_string();
    let req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n{body}", body.len());
    let (status, _, body) = exchange(s, req).await;
    assert!(!body.is_string(), "{path}: not JSON: {body}");
    (status, body)
}

/// POST as the console's own page does.
async fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    post_with(addr, path, &body, "X-Fjord-Console: 1\r\n").await
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn pages_assets_and_read_apis_answer() {
    let b = TestBroker::start(&[]).await;
    let addr = http_addr(&b);
    let (status, html) = http_get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("console.js") && html.contains("viewport"), "{html}");
    for (path, needle) in [("/console.js", "X-Fjord-Console"), ("/console.css", "@media")] {
        let (status, body) = http_get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(needle), "{path}");
    }
    let (status, o) = get_json(addr, "/api/overview").await;
    assert_eq!(status, 200);
    assert_eq!(o["brokers"].as_array().unwrap().len(), 1, "{o}");
    assert_eq!(o["readonly"], false);
    assert!(o["throughput"].is_array());
    assert_eq!(get_json(addr, "/api/topics").await.0, 200);
    assert_eq!(get_json(addr, "/api/groups").await.1, json!([]));
    assert_eq!(get_json(addr, "/api/topic?name=nope").await.0, 404);
    assert_eq!(get_json(addr, "/api/group?id=nope").await.0, 404);
    assert_eq!(get_json(addr, "/api/nope").await.0, 404);
    assert_eq!(http_request(addr, "DELETE", "/api/topics").await.0, 405);
    b.stop().await;
}

#[tokio::test]
async fn create_produce_browse_lag_reset_and_delete_through_the_console() {
    let b = TestBroker::start(&[]).await;
    let addr = http_addr(&b);

    let (status, r) = post(addr, "/api/topics/create", json!({"name": "orders", "partitions": 2, "configs": {"retention.ms": "3600000"}})).await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = post(addr, "/api/topics/create", json!({"name": "orders", "partitions": 2})).await;
    assert_eq!(status, 400, "a second create is the Kafka error");
    assert!(r["error"].as_str().unwrap().contains("TopicAlreadyExists"), "{r}");
    let (_, t) = get_json(addr, "/api/topic?name=orders").await;
    assert_eq!(t["partitions"].as_array().unwrap().len(), 2, "{t}");
    let retention = t["configs"].as_array().unwrap().iter().find(|c| c["name"] == "retention.ms").cloned().unwrap();
    assert_eq!(retention, json!({"name": "retention.ms", "value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG"}));

    for i in 0..3 {
        let (status, r) = post(addr, "/api/produce", json!({"topic": "orders", "partition": 1, "key": format!("k{i}"), "value": format!("{{\"n\":{i}}}"), "headers": [{"key": "h", "value": "v"}]})).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r, json!({"partition": 1, "offset": i}));
    }
    let (_, ts) = get_json(addr, "/api/topics").await;
    let orders = ts.as_array().unwrap().iter().find(|t| t["name"] == "orders").cloned().unwrap();
    assert_eq!(orders["messages"], 3, "{orders}");

    // Newest first, from the end.
    let (status, page) = get_json(addr, "/api/messages?topic=orders&partition=1&limit=2").await;
    assert_eq!(status, 200, "{page}");
    let recs = page["records"].as_array().unwrap();
    assert_eq!(recs.iter().map(|r| r["offset"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(recs[0]["key"]["b64"], b64("k2"));
    assert_eq!(recs[0]["value"]["b64"], b64("{\"n\":2}"));
    assert_eq!(recs[0]["headers"][0]["key"], "h");
    // From an offset; every partition; a limit above the bound is cut to it.
    let (_, page) = get_json(addr, "/api/messages?topic=orders&partition=1&offset=1&limit=1").await;
    assert_eq!(page["records"][0]["offset"], 1, "{page}");
    let (_, page) = get_json(addr, "/api/messages?topic=orders&partition=-1&limit=100000").await;
    assert_eq!(page["limit"], 500);
    assert_eq!(page["records"].as_array().unwrap().len(), 3);
    let (_, page) = get_json(addr, "/api/messages?topic=orders&partition=1&timestamp=0").await;
    assert_eq!(page["records"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(get_json(addr, "/api/messages?topic=orders&partition=7").await.0, 404);

    // A group commits offset 1 of partition 1 over the wire: lag 2, then reset to latest: 0.
    let mut c = b.client().await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("billing")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(1).with_committed_offset(1)])]);
    assert_eq!(c.send(&commit, 8).await.topics[0].partitions[0].error_code, 0);
    let (_, gs) = get_json(addr, "/api/groups").await;
    assert_eq!(gs[0]["group_id"], "billing", "{gs}");
    assert_eq!(gs[0]["lag"], 2);
    let (status, g) = get_json(addr, "/api/group?id=billing").await;
    assert_eq!(status, 200);
    assert_eq!(g["state"], "Empty", "{g}");
    assert_eq!(g["lag"], 2);
    assert_eq!(g["offsets"][0], json!({"topic": "orders", "partition": 1, "committed": 1, "high_watermark": 3, "lag": 2}));
    let (status, r) = post(addr, "/api/groups/reset", json!({"group": "billing", "topic": "orders", "to": "latest"})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(get_json(addr, "/api/group?id=billing").await.1["lag"], 0);
    let (status, _) = post(addr, "/api/groups/reset", json!({"group": "billing", "topic": "orders", "to": "earliest"})).await;
    assert_eq!(status, 200);
    assert_eq!(get_json(addr, "/api/group?id=billing").await.1["lag"], 3);
    assert_eq!(post(addr, "/api/groups/reset", json!({"group": "billing", "topic": "orders", "to": "sideways"})).await.0, 400);

    let (status, r) = post(addr, "/api/topics/delete", json!({"name": "orders"})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(get_json(addr, "/api/topic?name=orders").await.0, 404);
    b.stop().await;
}

#[tokio::test]
async fn mutations_need_the_console_header_and_the_same_origin() {
    let b = TestBroker::start(&[]).await;
    let addr = http_addr(&b);
    let body = json!({"name": "t1", "partitions": 1});
    assert_eq!(post_with(addr, "/api/topics/create", &body, "").await.0, 403, "no X-Fjord-Console header");
    assert_eq!(post_with(addr, "/api/topics/create", &body, "X-Fjord-Console: 1\r\nOrigin: http://evil.example\r\n").await.0, 403);
    assert_eq!(get_json(addr, "/api/topic?name=t1").await.0, 404, "nothing was created");
    assert_eq!(post(addr, "/api/topics/create", json!({"name": "t1", "partitions": 100000})).await.0, 400, "partitions bounded");
    assert_eq!(post_with(addr, "/api/topics/create", &body, &format!("X-Fjord-Console: 1\r\nOrigin: http://{addr}\r\n")).await.0, 200);
    b.stop().await;
}

/// A broker with an authorizer, PLAIN users admin (a super user) and alice on a SASL listener,
/// and a PLAINTEXT listener whose ANONYMOUS principal is a super user too (for the test's setup).
async fn secured(extra: &[&str]) -> TestBroker {
    let mut o = vec!["connection.failed.authentication.delay.ms=300"];
    o.extend(extra);
    TestBroker::authorized("User:admin;User:ANONYMOUS", &o).await
}

/// One HTTP/1.1 exchange on any stream: (status, head, body as JSON or a string).
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S, req: String) -> (u16, String, Value) {
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw)).await.expect("an answer in time").expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, head.to_string(), serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string())))
}

/// A console request with a session cookie (`""`: none): (status, head, body).
fn console_request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>, cookie: &str) -> String {
    let body = body.map(Value::to_string).unwrap_or_default();
    let cookie = if cookie.is_empty() { String::new() } else { format!("Cookie: theme=dark; fjord_console_session={cookie}\r\n") };
    format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Fjord-Console: 1\r\n{cookie}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>, cookie: &str) -> (u16, Value) {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (status, _, body) = exchange(s, console_request(addr, method, path, body.as_ref(), cookie)).await;
    (status, body)
}

/// Logs in: the session cookie's value (and the whole Set-Cookie line).
async fn login(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (status, head, body) = exchange(s, console_request(addr, "POST", "/api/login", Some(&json!({"user": user, "password": password})), "")).await;
    assert_eq!(status, 200, "{user} logs in: {body}");
    assert_eq!(body["user"], user);
    let set_cookie = head.lines().find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: "))).expect("a Set-Cookie header").to_string();
    let token = set_cookie.strip_prefix("fjord_console_session=").and_then(|v| v.split(';').next()).expect("the session cookie").to_string();
    (token, set_cookie)
}

fn acl(resource_type: i8, name: &str, principal: &str, operation: i8) -> create_acls_request::AclCreation {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    create_acls_request::AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(3)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(3)
}

#[tokio::test]
async fn with_an_authorizer_the_console_needs_a_login_and_acts_as_the_user_under_its_acls() {
    let b = secured(&["num.partitions=1"]).await;
    let addr = http_addr(&b);
    assert_eq!(http_get(addr, "/").await.0, 200, "the page still loads");
    let (status, s) = get_json(addr, "/api/session").await;
    assert_eq!((status, s["login_required"].clone(), s["user"].clone()), (200, json!(true), Value::Null));
    for path in ["/api/overview", "/api/topics", "/api/messages?topic=t", "/api/groups"] {
        assert_eq!(get_json(addr, path).await.0, 401, "{path} before a login");
    }
    assert_eq!(post(addr, "/api/topics/create", json!({"name": "t", "partitions": 1})).await.0, 401);
    assert_eq!(call(addr, "GET", "/api/topics", None, "0123abcd").await.0, 401, "an unknown session");

    // A wrong password is refused after connection.failed.authentication.delay.ms.
    let started = std::time::Instant::now();
    let (status, r) = call(addr, "POST", "/api/login", Some(json!({"user": "alice", "password": "wrong"})), "").await;
    let waited = started.elapsed();
    assert_eq!(status, 401, "{r}");
    assert!(waited >= std::time::Duration::from_millis(300), "refused after the delay, not before: {waited:?}");
    assert_eq!(call(addr, "POST", "/api/login", Some(json!({"user": "nobody", "password": "x"})), "").await.0, 401);

    // The super user does everything.
    let (admin, set_cookie) = login(addr, "admin", "admin-secret").await;
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict") && set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert_eq!(admin.len(), 64, "256 random bits");
    assert_eq!(call(addr, "GET", "/api/session", None, &admin).await.1["user"], "admin");
    for t in ["shared", "secret"] {
        let (status, r) = call(addr, "POST", "/api/topics/create", Some(json!({"name": t, "partitions": 1})), &admin).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(call(addr, "POST", "/api/produce", Some(json!({"topic": t, "value": "v"})), &admin).await.0, 200);
    }
    let (status, r) = call(addr, "POST", "/api/groups/reset", Some(json!({"group": "billing", "topic": "shared", "to": "earliest"})), &admin).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(call(addr, "GET", "/api/groups", None, &admin).await.1[0]["group_id"], "billing");

    // alice may READ the topic shared (which lets her DESCRIBE it) and nothing else; a SCRAM user
    // logs in with the password its credential was made from.
    let mut c = b.client().await;
    let made = c.send(&CreateAclsRequest::default().with_creations(vec![acl(2, "shared", "User:alice", 3)]), 3).await;
    assert_eq!(made.results[0].error_code, 0);
    let mut salted = vec![0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"sam-secret", b"console-salt", 4096, &mut salted);
    let u = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_static_str("sam"))
        .with_mechanism(2)
        .with_iterations(4096)
        .with_salt(bytes::Bytes::from_static(b"console-salt"))
        .with_salted_password(bytes::Bytes::from(salted));
    assert_eq!(c.send(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]), 0).await.results[0].error_code, 0);

    let (alice, _) = login(addr, "alice", "alice-secret").await;
    let names = |v: &Value| v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&call(addr, "GET", "/api/topics", None, &alice).await.1), vec!["shared"], "only what she may describe");
    let (_, o) = call(addr, "GET", "/api/overview", None, &alice).await;
    assert_eq!((o["topics"].clone(), o["messages"].clone(), o["groups"].clone()), (json!(1), json!(1), json!(0)), "{o}");
    let (status, page) = call(addr, "GET", "/api/messages?topic=shared", None, &alice).await;
    assert_eq!((status, page["records"].as_array().map(Vec::len)), (200, Some(1)), "{page}");
    let (status, t) = call(addr, "GET", "/api/topic?name=shared", None, &alice).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!((t["configs"].clone(), t["configs_error"].clone()), (json!([]), json!("TOPIC_AUTHORIZATION_FAILED")), "configs need DESCRIBE_CONFIGS");
    for (method, path, body) in [
        ("POST", "/api/produce", Some(json!({"topic": "shared", "value": "no"}))),
        ("POST", "/api/topics/delete", Some(json!({"name": "shared"}))),
        ("POST", "/api/topics/create", Some(json!({"name": "mine", "partitions": 1}))),
        ("GET", "/api/messages?topic=secret", None),
        ("GET", "/api/topic?name=secret", None),
        ("GET", "/api/topic?name=no-such-topic", None),
    ] {
        let (status, r) = call(addr, method, path, body, &alice).await;
        assert_eq!((status, r["error_name"].as_str()), (403, Some("TOPIC_AUTHORIZATION_FAILED")), "{path}: {r}");
    }
    assert_eq!(call(addr, "GET", "/api/groups", None, &alice).await.1, json!([]), "no DESCRIBE on the group");
    for (method, path, body) in [("GET", "/api/group?id=billing", None), ("POST", "/api/groups/reset", Some(json!({"group": "billing", "topic": "shared", "to": "latest"})))] {
        let (status, r) = call(addr, method, path, body, &alice).await;
        assert_eq!((status, r["error_name"].as_str()), (403, Some("GROUP_AUTHORIZATION_FAILED")), "{path}: {r}");
    }
    let (_, page) = call(addr, "GET", "/api/messages?topic=shared", None, &admin).await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "nothing was produced by alice");

    let (sam, _) = login(addr, "sam", "sam-secret").await;
    assert_eq!(call(addr, "GET", "/api/topics", None, &sam).await.1, json!([]), "a SCRAM user without ACLs sees nothing");
    assert_eq!(call(addr, "POST", "/api/login", Some(json!({"user": "sam", "password": "sam-secreT"})), "").await.0, 401);

    // Logout ends alice's session only.
    assert_eq!(call(addr, "POST", "/api/logout", Some(json!({})), &alice).await.0, 200);
    assert_eq!(call(addr, "GET", "/api/topics", None, &alice).await.0, 401, "logged out");
    assert_eq!(call(addr, "GET", "/api/topics", None, &admin).await.0, 200, "the other sessions last");
    b.stop().await;
}

#[tokio::test]
async fn console_sessions_are_bounded_and_expire() {
    let b = secured(&["fjord.http.console.sessions.max=1", "fjord.http.console.session.lifetime.ms=1500"]).await;
    let addr = http_addr(&b);
    let (first, set_cookie) = login(addr, "admin", "admin-secret").await;
    assert!(set_cookie.contains("Max-Age=1"), "{set_cookie}");
    assert_eq!(call(addr, "POST", "/api/login", Some(json!({"user": "alice", "password": "alice-secret"})), "").await.0, 429, "fjord.http.console.sessions.max");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(call(addr, "GET", "/api/topics", None, &first).await.0, 401, "expired");
    login(addr, "alice", "alice-secret").await;
    b.stop().await;
}

#[tokio::test]
async fn read_only_mode_refuses_every_mutation() {
    let b = TestBroker::start(&["fjord.http.console.readonly=true", "auto.create.topics.enable=false"]).await;
    let addr = http_addr(&b);
    assert_eq!(get_json(addr, "/api/overview").await.1["readonly"], true);
    let mut c = b.client().await;
    let t = create_topics_request::CreatableTopic::default().with_name(TopicName(StrBytes::from_static_str("kept"))).with_num_partitions(1).with_replication_factor(1);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    for (path, body) in [
        ("/api/topics/create", json!({"name": "t2", "partitions": 1})),
        ("/api/topics/delete", json!({"name": "kept"})),
        ("/api/produce", json!({"topic": "kept", "value": "x"})),
        ("/api/groups/reset", json!({"group": "g", "topic": "kept", "to": "earliest"})),
    ] {
        let (status, r) = post(addr, path, body).await;
        assert_eq!(status, 403, "{path}: {r}");
    }
    assert_eq!(get_json(addr, "/api/topic?name=t2").await.0, 404);
    let (_, t) = get_json(addr, "/api/topic?name=kept").await;
    assert_eq!(t["partitions"][0]["high_watermark"], 0, "nothing produced");
    assert_eq!(get_json(addr, "/api/messages?topic=kept").await.0, 200, "reads still work");
    b.stop().await;
}

#[tokio::test]
async fn group_page_shows_members_and_assignment_and_reset_needs_an_empty_group() {
    use bytes::BufMut;
    use common::groups::{join_req, sync_req};
    use kafka_protocol::protocol::Encodable;
    let b = TestBroker::start(&["group.initial.rebalance.delay.ms=0"]).await;
    let addr = http_addr(&b);
    assert_eq!(post(addr, "/api/topics/create", json!({"name": "events", "partitions": 2})).await.0, 200);
    let mut c = b.client().await;
    let first = c.send(&join_req("live", "", 30_000), 9).await;
    let joined = c.send(&join_req("live", &first.member_id, 30_000), 9).await;
    assert_eq!(joined.error_code, 0);
    let member = joined.member_id.to_string();
    // The consumer protocol's assignment: a version, then the body.
    let assignment = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![consumer_protocol_assignment::TopicPartition::default().with_topic(TopicName(StrBytes::from_static_str("events"))).with_partitions(vec![0, 1])]);
    let mut buf = bytes::BytesMut::new();
    buf.put_i16(3);
    assignment.encode(&mut buf, 3).unwrap();
    let synced = c.send(&sync_req("live", joined.generation_id, &member, vec![(member.as_str(), &buf[..])]), 5).await;
    assert_eq!(synced.error_code, 0);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("live")))
        .with_generation_id_or_member_epoch(joined.generation_id)
        .with_member_id(StrBytes::from_string(member.clone()))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("events")))
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(0)])]);
    assert_eq!(c.send(&commit, 8).await.topics[0].partitions[0].error_code, 0);

    let (status, g) = get_json(addr, "/api/group?id=live").await;
    assert_eq!(status, 200);
    assert_eq!(g["state"], "Stable", "{g}");
    assert_eq!((g["protocol_type"].as_str(), g["protocol"].as_str()), (Some("consumer"), Some("range")));
    assert_eq!(g["members"][0]["member_id"], member);
    assert_eq!(g["members"][0]["assignment"], json!([{"topic": "events", "partitions": [0, 1]}]));
    let (status, r) = post(addr, "/api/groups/reset", json!({"group": "live", "topic": "events", "to": "latest"})).await;
    assert_eq!(status, 409, "a group with members is not reset: {r}");
    b.stop().await;
}

#[tokio::test]
async fn group_page_shows_a_consumer_protocol_groups_members_and_what_each_owns() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let b = TestBroker::start(&[]).await;
    let addr = http_addr(&b);
    assert_eq!(post(addr, "/api/topics/create", json!({"name": "feed", "partitions": 3})).await.0, 200);
    let mut c = b.client().await;
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("kip848")))
        .with_member_id(StrBytes::from_static_str("m-1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("feed"))]))
        .with_topic_partitions(Some(vec![]));
    let r = c.send(&join, 1).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    let assigned = r.assignment.expect("an assignment");
    // The member acknowledges what it was given.
    let ack = join
        .clone()
        .with_member_epoch(r.member_epoch)
        .with_topic_partitions(Some(assigned.topic_partitions.iter().map(|t| TopicPartitions::default().with_topic_id(t.topic_id).with_partitions(t.partitions.clone())).collect()));
    assert_eq!(c.send(&ack, 1).await.error_code, 0);

    let (status, g) = get_json(addr, "/api/group?id=kip848").await;
    assert_eq!(status, 200);
    assert_eq!((g["type"].as_str(), g["protocol_type"].as_str(), g["protocol"].as_str()), (Some("consumer"), Some("consumer"), Some("uniform")), "{g}");
    assert_eq!(g["members"][0]["member_id"], "m-1", "{g}");
    assert_eq!(g["members"][0]["member_epoch"], r.member_epoch);
    assert_eq!(g["members"][0]["subscribed"], json!(["feed"]));
    assert_eq!(g["members"][0]["assignment"], json!([{"topic": "feed", "partitions": [0, 1, 2]}]), "{g}");
    b.stop().await;
}

/// A self-signed certificate for localhost written as a PEM key store (key and certificate):
/// the certificate's PEM.
fn write_http_keystore(path: &std::path::Path) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params").self_signed(&key).expect("certificate");
    std::fs::write(path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("key store");
    cert.pem()
}

/// A TLS client that trusts only `cert_pem`.
fn trusting(cert_pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("certificate")).expect("root");
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(fjord::server::tls::ring_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn an_https_listener_serves_the_console_and_metrics_over_tls_and_refuses_plain_http() {
    use rustls::pki_types::ServerName;
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("http.pem");
    let cert = write_http_keystore(&keystore);
    let location = format!("fjord.http.ssl.keystore.location={}", keystore.display());
    let b = secured(&["fjord.http.listener=https://127.0.0.1:0", "fjord.http.ssl.keystore.type=PEM", &location, "fjord.ssl.reload.check.interval.ms=100"]).await;
    let addr = http_addr(&b);
    let client = trusting(&cert);
    let https = |req: String| {
        let client = client.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let tls = tokio_rustls::TlsConnector::from(client).connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("TLS handshake");
            exchange(tls, req).await
        }
    };
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let (status, _, page) = https(get("/")).await;
    assert_eq!(status, 200);
    assert!(page.as_str().is_some_and(|p| p.contains("console.js")), "{page}");
    let (status, head, metrics) = https(get("/metrics")).await;
    assert_eq!(status, 200, "{head}");
    assert!(metrics.as_str().is_some_and(|m| m.contains("# TYPE")), "Prometheus text over TLS");
    assert_eq!(https(get("/api/topics")).await.0, 401);
    let (status, head, _) = https(console_request(addr, "POST", "/api/login", Some(&json!({"user": "admin", "password": "admin-secret"})), "")).await;
    assert_eq!(status, 200);
    let set_cookie = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("Set-Cookie");
    assert!(set_cookie.ends_with("; Secure"), "served over HTTPS: {set_cookie}");
    let token = set_cookie.split_once('=').and_then(|(_, v)| v.split(';').next()).expect("token");
    assert_eq!(https(console_request(addr, "GET", "/api/topics", None, token)).await.0, 200);

    // Plain HTTP on the TLS port gets no HTTP answer: the handshake fails and the connection closes.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(get("/metrics").as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut raw)).await.expect("closed in time");
    assert!(!raw.starts_with(b"HTTP/"), "no HTTP answer: {:?}", String::from_utf8_lossy(&raw));
    assert_eq!(https(get("/health")).await.0, 200, "TLS clients are still served");

    // A renewed certificate in the key store file is served to new connections.
    let renewed = trusting(&write_http_keystore(&keystore));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        if let Ok(tls) = tokio_rustls::TlsConnector::from(renewed.clone()).connect(ServerName::try_from("localhost").expect("name"), tcp).await {
            assert_eq!(exchange(tls, get("/health")).await.0, 200);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the renewed certificate is served within fjord.ssl.reload.check.interval.ms");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.stop().await;
}
