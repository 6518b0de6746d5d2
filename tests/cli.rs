//! The `fjord` admin CLI as people run it: the real binary, as a child process, against a broker
//! the test starts on 127.0.0.1:0. Topics through their whole life, records produced from stdin
//! and consumed back (keys, headers, partitions, formats), a group's commits, lag and reset, and
//! the `--json` output parsed as scripts would parse it.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::TestBroker;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `fjord ARGS -b ADDR`, feeding `stdin`.
/// `fjord ARGS -b ADDR` with its stdout piped, killed if the test drops it.
fn command(addr: SocketAddr, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fjord"));
    c.args(args).arg("-b").arg(addr.to_string()).stdout(Stdio::piped()).kill_on_drop(true);
    c
}

async fn fjord(addr: SocketAddr, args: &[&str], stdin: &str) -> Run {
    let mut child = command(addr, args).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the fjord binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output()).await.expect("the CLI finishes").unwrap();
    Run { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// Runs and expects success.
async fn ok(addr: SocketAddr, args: &[&str], stdin: &str) -> String {
    let r = fjord(addr, args, stdin).await;
    assert!(r.ok, "fjord {args:?} failed:\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
    r.stdout
}

async fn json(addr: SocketAddr, args: &[&str], stdin: &str) -> Value {
    let mut with = args.to_vec();
    with.push("--json");
    let out = ok(addr, &with, stdin).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("fjord {args:?} --json printed no JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_is_created_described_configured_grown_listed_and_deleted() {
    let b = TestBroker::start(&[]).await;
    let out = ok(b.addr, &["topic", "create", "orders", "--partitions", "2", "--config", "retention.ms=3600000"], "").await;
    assert!(out.contains("Created topic orders"), "{out}");
    let again = fjord(b.addr, &["topic", "create", "orders", "-p", "2"], "").await;
    assert!(!again.ok && again.stderr.contains("TopicAlreadyExists"), "a second create fails with Kafka's error name: {}", again.stderr);

    let listed = ok(b.addr, &["topic", "list"], "").await;
    assert!(listed.lines().next().unwrap().starts_with("TOPIC"), "a table with a header: {listed}");
    assert!(listed.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["orders", "2", "1"]), "{listed}");

    let d = json(b.addr, &["topic", "describe", "orders"], "").await;
    assert_eq!(d[0]["topic"], "orders");
    assert_eq!(d[0]["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(d[0]["configs"]["retention.ms"], "3600000", "the config set at creation is shown: {d}");
    let table = ok(b.addr, &["topic", "describe", "orders"], "").await;
    assert!(table.contains("PartitionCount: 2") && table.contains("retention.ms=3600000"), "{table}");

    ok(b.addr, &["topic", "alter-config", "orders", "--set", "cleanup.policy=compact", "--delete", "retention.ms"], "").await;
    let d = json(b.addr, &["topic", "describe", "orders"], "").await;
    assert_eq!(d[0]["configs"]["cleanup.policy"], "compact", "{d}");
    assert!(d[0]["configs"].get("retention.ms").is_none(), "the deleted config is back to its default: {d}");

    ok(b.addr, &["topic", "add-partitions", "orders", "--partitions", "5"], "").await;
    let fewer = fjord(b.addr, &["topic", "add-partitions", "orders", "-p", "3"], "").await;
    assert!(!fewer.ok && fewer.stderr.contains("InvalidPartitions"), "{}", fewer.stderr);
    let listed = json(b.addr, &["topic", "list"], "").await;
    let orders = listed.as_array().unwrap().iter().find(|t| t["topic"] == "orders").expect("listed");
    assert_eq!(orders["partitions"], 5);

    ok(b.addr, &["topic", "delete", "orders"], "").await;
    let listed = json(b.addr, &["topic", "list"], "").await;
    assert!(listed.as_array().unwrap().iter().all(|t| t["topic"] != "orders"), "{listed}");
    let missing = fjord(b.addr, &["topic", "describe", "orders"], "").await;
    assert!(!missing.ok && missing.stderr.contains("UnknownTopicOrPartition"), "{}", missing.stderr);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_produced_from_stdin_come_back_with_their_keys_headers_and_partitions() {
    let b = TestBroker::start(&[]).await;
    ok(b.addr, &["topic", "create", "events", "-p", "3"], "").await;
    let produced = json(b.addr, &["produce", "-t", "events", "-K", ":", "-H", "source=cli", "-H", "run=1"], "alpha:1\nbeta:2\ngamma:3\nno key here\n").await;
    assert_eq!(produced["records"], 4, "{produced}");
    ok(b.addr, &["produce", "-t", "events", "-p", "2", "-z", "zstd"], "pinned-a\npinned-b\n").await;

    let records: Vec<Value> = ok(b.addr, &["consume", "-t", "events", "--from-beginning", "-e", "--json"], "")
        .await
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per record"))
        .collect();
    assert_eq!(records.len(), 6, "{records:?}");
    let alpha = records.iter().find(|r| r["key"] == "alpha").expect("alpha");
    assert_eq!(alpha["value"], "1");
    assert_eq!(alpha["headers"]["source"], "cli");
    assert_eq!(alpha["headers"]["run"], "1");
    let unkeyed = records.iter().find(|r| r["value"] == "no key here").expect("the unkeyed line");
    assert!(unkeyed["key"].is_null());
    let pinned: Vec<_> = records.iter().filter(|r| r["value"].as_str().unwrap().starts_with("pinned")).collect();
    assert!(pinned.iter().all(|r| r["partition"] == 2), "-p puts records on that partition: {pinned:?}");

    let one = ok(b.addr, &["consume", "-t", "events", "-p", "2", "-o", "beginning", "-c", "1", "-f", "%p\\n"], "").await;
    assert_eq!(one, "2\n", "-c stops after the count, -p reads only that partition");
    let last = ok(b.addr, &["consume", "-t", "events", "-p", "2", "-o", "-1", "-e"], "").await;
    assert_eq!(last, "pinned-b\n", "-o -1 starts one before the end");

    // The same key always lands on the same partition (Kafka's murmur2 partitioner).
    ok(b.addr, &["produce", "-t", "events", "-K", ":"], "alpha:again\n").await;
    let formatted = ok(b.addr, &["consume", "-t", "events", "--from-beginning", "-e", "-f", "%k|%s|%p|%o|%h\\n"], "").await;
    let alphas: Vec<&str> = formatted.lines().filter(|l| l.starts_with("alpha|")).collect();
    assert_eq!(alphas.len(), 2, "{formatted}");
    let partition_of = |l: &str| l.split('|').nth(2).unwrap().to_string();
    assert_eq!(partition_of(alphas[0]), partition_of(alphas[1]), "{alphas:?}");
    assert!(formatted.contains("alpha|1|") && formatted.contains("|source=cli,run=1"), "{formatted}");

    let none = ok(b.addr, &["consume", "-t", "events", "--timestamp", "99999999999999", "-e"], "").await;
    assert_eq!(none, "", "a time after every record starts at the end");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commits_shows_its_lag_and_is_reset_only_with_execute() {
    let b = TestBroker::start(&[]).await;
    ok(b.addr, &["topic", "create", "jobs", "-p", "2"], "").await;
    let lines: String = (0..10).map(|i| format!("job-{i}\n")).collect();
    ok(b.addr, &["produce", "-t", "jobs", "-p", "0"], &lines).await;
    ok(b.addr, &["produce", "-t", "jobs", "-p", "1"], "x\ny\n").await;

    let got = ok(b.addr, &["consume", "-t", "jobs", "-p", "0", "--from-beginning", "-g", "workers", "-c", "4"], "").await;
    assert_eq!(got.lines().count(), 4);

    let listed = json(b.addr, &["group", "list"], "").await;
    assert!(listed.as_array().unwrap().iter().any(|g| g["group"] == "workers"), "{listed}");

    let d = json(b.addr, &["group", "describe", "workers"], "").await;
    let p0 = d[0]["offsets"].as_array().unwrap().iter().find(|o| o["topic"] == "jobs" && o["partition"] == 0).cloned().expect("partition 0 committed");
    assert_eq!(p0["current_offset"], 4, "{d}");
    assert_eq!(p0["log_end_offset"], 10);
    assert_eq!(p0["lag"], 6);
    assert_eq!(d[0]["state"], "Empty");
    let table = ok(b.addr, &["group", "describe", "workers"], "").await;
    assert!(table.contains("LAG") && table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()[..6] == ["workers", "jobs", "0", "4", "10", "6"]), "{table}");

    // The group goes on from its committed offset.
    let next = ok(b.addr, &["consume", "-t", "jobs", "-p", "0", "-g", "workers", "-c", "1"], "").await;
    assert_eq!(next, "job-4\n");

    // Planned only: nothing moves.
    let plan = json(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-earliest"], "").await;
    assert_eq!(plan["executed"], false);
    let d = json(b.addr, &["group", "describe", "workers"], "").await;
    assert_eq!(d[0]["offsets"][0]["current_offset"], 5, "a dry run commits nothing: {d}");

    let done = json(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-earliest", "--execute"], "").await;
    assert_eq!(done["executed"], true);
    assert_eq!(done["offsets"].as_array().unwrap().len(), 2, "every partition of the topic: {done}");
    let d = json(b.addr, &["group", "describe", "workers"], "").await;
    let offsets = d[0]["offsets"].as_array().unwrap();
    assert!(offsets.iter().all(|o| o["current_offset"] == 0), "{d}");
    assert_eq!(d[0]["total_lag"], 12);
    let again = ok(b.addr, &["consume", "-t", "jobs", "-p", "0", "-g", "workers", "-c", "1"], "").await;
    assert_eq!(again, "job-0\n", "the group starts again from the earliest offset");

    ok(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs:1", "--to-latest", "--execute"], "").await;
    ok(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs:0", "--to-offset", "7", "--execute"], "").await;
    let d = json(b.addr, &["group", "describe", "workers"], "").await;
    let current: Vec<_> = d[0]["offsets"].as_array().unwrap().iter().map(|o| o["current_offset"].as_i64().unwrap()).collect();
    assert_eq!(current, [7, 2], "{d}");

    // A time before every record is the start of the log; one after them all, the end.
    ok(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-datetime", "2000-01-01T00:00:00.000", "--execute"], "").await;
    let d = json(b.addr, &["group", "describe", "workers"], "").await;
    assert!(d[0]["offsets"].as_array().unwrap().iter().all(|o| o["current_offset"] == 0), "{d}");
    ok(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-datetime", "2999-01-01T00:00:00.000+01:00", "--execute"], "").await;
    let d = json(b.addr, &["group", "describe", "workers"], "").await;
    assert_eq!(d[0]["total_lag"], 0, "{d}");
    ok(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs", "--by-duration", "P1D", "--execute"], "").await;
    let d = json(b.addr, &["group", "describe", "workers"], "").await;
    assert_eq!(d[0]["total_lag"], 12, "every record is younger than a day: {d}");
    let plan = json(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-current"], "").await;
    assert!(plan["offsets"].as_array().unwrap().iter().all(|o| o["new_offset"] == o["previous_offset"]), "{plan}");
    assert!(!fjord(b.addr, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-datetime", "yesterday"], "").await.ok);

    ok(b.addr, &["group", "delete", "workers"], "").await;
    let listed = json(b.addr, &["group", "list"], "").await;
    assert!(listed.as_array().unwrap().iter().all(|g| g["group"] != "workers"), "{listed}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_info_names_the_broker_and_an_unreachable_broker_is_an_error() {
    let b = TestBroker::start(&[]).await;
    let info = json(b.addr, &["cluster", "info"], "").await;
    let brokers = info["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{info}");
    assert_eq!(brokers[0]["port"], b.addr.port());
    assert!(info["cluster_id"].is_string(), "{info}");
    let table = ok(b.addr, &["cluster", "info"], "").await;
    assert!(table.contains("Cluster id:") && table.contains(&b.addr.port().to_string()), "{table}");
    let addr = b.addr;
    b.stop().await;
    let down = fjord(addr, &["cluster", "info", "--timeout-ms", "2000"], "").await;
    assert!(!down.ok && down.stderr.starts_with("error:"), "{}", down.stderr);
}

#[tokio::test]
async fn without_a_subcommand_fjord_is_still_the_broker() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fjord")).arg("--help").output().await.unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in ["--config", "--override", "--log-format", "Properties", "topic", "consume", "group"] {
        assert!(help.contains(expected), "--help lists {expected}: {help}");
    }
    // A subcommand and broker options do not mix.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fjord")).args(["--config", "x.properties", "topic", "list"]).output().await.unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_many_records_goes_out_in_batches_and_comes_back_whole() {
    let b = TestBroker::start(&[]).await;
    ok(b.addr, &["topic", "create", "bulk", "-p", "4"], "").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.txt");
    let lines: String = (0..5000).map(|i| format!("key-{i},value-{i}\n")).collect();
    std::fs::write(&file, lines).unwrap();
    let produced = json(b.addr, &["produce", "-t", "bulk", "-K", ",", "-z", "lz4", "-f", file.to_str().unwrap()], "").await;
    assert_eq!(produced["records"], 5000, "{produced}");
    let per_partition: i64 = produced["partitions"].as_array().unwrap().iter().map(|p| p["records"].as_i64().unwrap()).sum();
    assert_eq!(per_partition, 5000);
    assert!(produced["partitions"].as_array().unwrap().len() > 1, "keys spread over the partitions: {produced}");
    let out = ok(b.addr, &["consume", "-t", "bulk", "--from-beginning", "-e", "-f", "%k=%s\\n"], "").await;
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 5000);
    assert!(got.contains(&"key-4999=value-4999"));

    // The producer is idempotent: every partition's batches carry one producer id and the
    // sequence numbers of all its records.
    use kafka_protocol::messages::{DescribeProducersRequest, TopicName, describe_producers_request::TopicRequest};
    let mut c = b.client().await;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default().with_name(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("bulk"))).with_partition_indexes(vec![0, 1, 2, 3])]);
    let r = c.send(&req, 0).await;
    let mut ids = std::collections::BTreeSet::new();
    for p in &r.topics[0].partitions {
        let records = produced["partitions"].as_array().unwrap().iter().find(|x| x["partition"] == p.partition_index).map_or(0, |x| x["records"].as_i64().unwrap());
        if records == 0 {
            continue;
        }
        assert_eq!(p.active_producers.len(), 1, "{p:?}");
        assert_eq!(p.active_producers[0].last_sequence as i64, records - 1, "partition {}", p.partition_index);
        ids.insert(p.active_producers[0].producer_id.0);
    }
    assert_eq!(ids.len(), 1, "one producer id for the whole run: {ids:?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjord_with_broker_options_and_no_subcommand_starts_a_broker_the_cli_can_talk_to() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut broker = tokio::process::Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["--override", &format!("listeners=PLAINTEXT://127.0.0.1:{port}")])
        .args(["--override", &format!("log.dirs={}", dir.path().display())])
        .args(["--override", "fjord.http.listener=none"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut info = None;
    for _ in 0..100 {
        let r = fjord(addr, &["cluster", "info", "--json"], "").await;
        if r.ok {
            info = Some(r.stdout);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let info: Value = serde_json::from_str(&info.expect("the broker answers the CLI")).unwrap();
    assert_eq!(info["brokers"][0]["port"], port);
    broker.kill().await.unwrap();
}

/// A `fjord consume` child left running, its output lines collected as they come.
struct Background {
    child: tokio::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Background {
    fn start(addr: SocketAddr, args: &[&str]) -> Background {
        use tokio::io::AsyncBufReadExt;
        let mut child = command(addr, args).stdin(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("the fjord binary runs");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (out, sink) = (child.stdout.take().unwrap(), lines.clone());
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Background { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Polls `fjord group describe --json` until `ok` holds (20 s at most).
async fn wait_for_group(addr: SocketAddr, group: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let d = json(addr, &["group", "describe", group], "").await;
        if ok(&d[0]) {
            return d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("group {group}: never {what}: {}", json(addr, &["group", "describe", group], "").await);
}

async fn wait_for_lines(b: &Background, n: usize) {
    for _ in 0..100 {
        if b.lines().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("expected {n} lines, got {:?}", b.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_one_group_share_the_partitions_and_hand_them_over_when_one_leaves() {
    let b = TestBroker::start(&["group.consumer.heartbeat.interval.ms=500", "group.consumer.min.heartbeat.interval.ms=500"]).await;
    ok(b.addr, &["topic", "create", "shared", "-p", "4"], "").await;
    let format = ["-f", "%p %s\\n"];
    let first = Background::start(b.addr, &[&["consume", "-t", "shared", "-g", "readers", "--from-beginning"][..], &format].concat());
    let one_member = |g: &Value| g["state"] == "Stable" && g["members"].as_array().is_some_and(|m| m.len() == 1 && m[0]["partitions"] == 4);
    wait_for_group(b.addr, "readers", "gave the first member all 4 partitions", one_member).await;
    // The second stops after its share (2 partitions of 10 records) and leaves the group.
    let second = Background::start(b.addr, &[&["consume", "-t", "shared", "-g", "readers", "--from-beginning", "-c", "20"][..], &format].concat());
    let two_members = |g: &Value| g["state"] == "Stable" && g["members"].as_array().is_some_and(|m| m.len() == 2 && m.iter().all(|m| m["partitions"] == 2));
    wait_for_group(b.addr, "readers", "split the partitions 2 and 2", two_members).await;

    for p in 0..4 {
        let lines: String = (0..10).map(|i| format!("r{p}-{i}\n")).collect();
        ok(b.addr, &["produce", "-t", "shared", "-p", &p.to_string()], &lines).await;
    }
    wait_for_lines(&first, 20).await;
    wait_for_lines(&second, 20).await;
    let partitions = |lines: &[String]| lines.iter().map(|l| l.split(' ').next().unwrap().to_string()).collect::<std::collections::BTreeSet<_>>();
    let (a, c) = (first.lines(), second.lines());
    assert_eq!(partitions(&a).len(), 2, "{a:?}");
    assert!(partitions(&a).is_disjoint(&partitions(&c)), "each partition read by one member: {a:?} {c:?}");
    let mut all: Vec<String> = a.iter().chain(c.iter()).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40, "every record once");

    // The second member exits after its 20 records; its partitions go to the first, which goes
    // on from the offsets the second committed.
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), second.child.wait_with_output()).await.expect("the second member exits").unwrap();
    assert!(status.status.success());
    wait_for_group(b.addr, "readers", "gave the first member all 4 partitions back", one_member).await;
    for p in 0..4 {
        ok(b.addr, &["produce", "-t", "shared", "-p", &p.to_string()], &format!("late{p}\n")).await;
    }
    wait_for_lines(&first, 24).await;
    let late: Vec<String> = first.lines()[20..].to_vec();
    assert_eq!(partitions(&late).len(), 4, "the first member reads every partition now and nothing twice: {late:?}");
    assert!(late.iter().all(|l| l.contains(" late")), "{late:?}");
    let d = wait_for_group(b.addr, "readers", "committed everything", |g| g["total_lag"] == 0).await;
    assert_eq!(d[0]["offsets"].as_array().unwrap().len(), 4, "{d}");
    drop(first);
    b.stop().await;
}
