//! rdkafka (Rust, bundled librdkafka) against a Fjord broker at $FJORD_BOOTSTRAP.
//!
//! Prints one `PASS name` / `FAIL name: detail` line per check (run.sh feeds them into lib.sh's
//! counters) and exits non-zero on any failure. Consumers use assign() with explicit offsets and
//! never subscribe or commit: the broker has no group coordinator yet.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const TOPIC: &str = "rdkafka-records";
const PARTS: i32 = 3;
const T: Duration = Duration::from_secs(15);

/// One record as sent: what the broker must hand back byte-identical.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    ts: i64,
}

struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn pass(&mut self, name: &str) {
        self.passed += 1;
        println!("PASS {name}");
    }
    fn fail(&mut self, name: &str, detail: impl AsRef<str>) {
        self.failed += 1;
        println!("FAIL {name}: {}", detail.as_ref());
    }
    fn check(&mut self, name: &str, errors: &[String]) {
        if errors.is_empty() {
            self.pass(name);
        } else {
            let shown: Vec<&str> = errors.iter().take(5).map(String::as_str).collect();
            self.fail(name, format!("{} problem(s): {}", errors.len(), shown.join("; ")));
        }
    }
}

/// Deterministic xorshift64* so a failure is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// Record i: binary keys from a small key space (so one key recurs), values from empty to ~16 KiB
/// (null every 97th), two or three headers including a binary one and sometimes a null-valued one.
/// Timestamps are explicit and strictly increasing: base + 3*i.
fn gen_record(rng: &mut Rng, i: usize, base_ts: i64) -> Rec {
    let mut key = format!("key-{:04}-", i % 701).into_bytes();
    key.extend_from_slice(&[0x00, 0xff, (i % 701) as u8, 0x1f, 0x1e]);
    let value = if i % 97 == 13 {
        None
    } else {
        let len = match i % 10 {
            0 => 0,
            1..=6 => (rng.next() % 200) as usize,
            7 | 8 => 200 + (rng.next() % 2000) as usize,
            _ => 2_000 + (rng.next() % 14_000) as usize,
        };
        let mut v = format!("v{i}:").into_bytes();
        v.extend(rng.bytes(len));
        if len == 0 {
            v.clear();
        }
        Some(v)
    };
    let mut headers = vec![
        ("seq".to_string(), Some(i.to_string().into_bytes())),
        ("bin".to_string(), Some(rng.bytes(1 + i % 40))),
    ];
    if i % 50 == 7 {
        headers.push(("nullhdr".to_string(), None));
    }
    if i % 33 == 0 {
        headers.push(("empty".to_string(), Some(Vec::new())));
    }
    Rec { key, value, headers, ts: base_ts + 3 * i as i64 }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "15000");
    c
}

async fn admin_checks(r: &mut Report, bootstrap: &str) -> bool {
    let admin: AdminClient<DefaultClientContext> = match client_config(bootstrap).create() {
        Ok(a) => a,
        Err(e) => {
            r.fail("admin client created", e.to_string());
            return false;
        }
    };
    let opts = AdminOptions::new().operation_timeout(Some(T)).request_timeout(Some(T));

    // Create the 3-partition topic.
    let created = admin
        .create_topics(&[NewTopic::new(TOPIC, PARTS, TopicReplication::Fixed(1))], &opts)
        .await;
    let ok = match created {
        Ok(results) => match results.as_slice() {
            [Ok(name)] if name == TOPIC => {
                r.pass("AdminClient create_topics: 3 partitions, replication factor 1");
                true
            }
            other => {
                r.fail("AdminClient create_topics: 3 partitions, replication factor 1", format!("{other:?}"));
                false
            }
        },
        Err(e) => {
            r.fail("AdminClient create_topics: 3 partitions, replication factor 1", e.to_string());
            false
        }
    };

    // Creating it again: TopicAlreadyExists.
    match admin
        .create_topics(&[NewTopic::new(TOPIC, PARTS, TopicReplication::Fixed(1))], &opts)
        .await
    {
        Ok(res) if matches!(res.as_slice(), [Err((n, RDKafkaErrorCode::TopicAlreadyExists))] if n == TOPIC) => {
            r.pass("AdminClient create_topics again is TopicAlreadyExists")
        }
        other => r.fail("AdminClient create_topics again is TopicAlreadyExists", format!("{other:?}")),
    }

    // Replication factor 3 on a single broker: InvalidReplicationFactor, and no topic is created.
    let bad = "rdkafka-rf3";
    match admin
        .create_topics(&[NewTopic::new(bad, 1, TopicReplication::Fixed(3))], &opts)
        .await
    {
        Ok(res) if matches!(res.as_slice(), [Err((n, RDKafkaErrorCode::InvalidReplicationFactor))] if n == bad) => {
            r.pass("AdminClient create_topics with replication factor 3 is InvalidReplicationFactor")
        }
        other => r.fail(
            "AdminClient create_topics with replication factor 3 is InvalidReplicationFactor",
            format!("{other:?}"),
        ),
    }
    ok
}

/// Produces every record through an idempotent lz4 FutureProducer, awaiting each delivery report.
/// Returns (partition, offset) per record index, None for a failed delivery.
async fn produce(r: &mut Report, bootstrap: &str, recs: &[Rec]) -> Vec<Option<(i32, i64)>> {
    let name = format!("idempotent acks=all lz4 FutureProducer: {} deliveries succeed", recs.len());
    let producer: FutureProducer = match client_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "10")
        .set("message.timeout.ms", "120000")
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            r.fail(&name, e.to_string());
            return vec![None; recs.len()];
        }
    };

    // Enqueue everything (librdkafka copies key/value/headers), then await the delivery futures in
    // send order.
    let started = Instant::now();
    let mut futures = Vec::with_capacity(recs.len());
    let mut errors = Vec::new();
    for rec in recs {
        let mut hdrs = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (k, v) in &rec.headers {
            hdrs = hdrs.insert(Header { key: k.as_str(), value: v.as_deref() });
        }
        let mut fr = FutureRecord::<[u8], [u8]>::to(TOPIC).key(&rec.key).headers(hdrs).timestamp(rec.ts);
        if let Some(v) = &rec.value {
            fr = fr.payload(v.as_slice());
        }
        loop {
            match producer.send_result(fr) {
                Ok(f) => {
                    futures.push(Some(f));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    fr = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    errors.push(format!("enqueue: {e}"));
                    futures.push(None);
                    break;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(recs.len());
    for (i, f) in futures.into_iter().enumerate() {
        let Some(f) = f else {
            out.push(None);
            continue;
        };
        match f.await {
            Ok(Ok(d)) => out.push(Some((d.partition, d.offset))),
            Ok(Err((e, _))) => {
                errors.push(format!("record {i}: {e}"));
                out.push(None);
            }
            Err(_) => {
                errors.push(format!("record {i}: delivery future cancelled"));
                out.push(None);
            }
        }
    }
    if let Err(e) = producer.flush(T) {
        errors.push(format!("flush: {e}"));
    }
    eprintln!("produced {} records in {:.3}s", recs.len(), started.elapsed().as_secs_f64());
    r.check(&name, &errors);

    // Delivery reports: each partition's offsets are 0..n-1 in send order (idempotent, fresh topic),
    // every partition got records, and one key always maps to one partition.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut key_part: HashMap<&[u8], i32> = HashMap::new();
    let mut order_err = Vec::new();
    let mut key_err = Vec::new();
    for (i, d) in out.iter().enumerate() {
        let Some((p, o)) = *d else { continue };
        let want = next.entry(p).or_insert(0);
        if o != *want {
            order_err.push(format!("record {i} on partition {p}: offset {o}, expected {want}"));
        }
        *want = o + 1;
        let kp = *key_part.entry(recs[i].key.as_slice()).or_insert(p);
        if kp != p {
            key_err.push(format!("record {i}: key on partitions {kp} and {p}"));
        }
    }
    if next.len() != PARTS as usize || next.keys().any(|p| !(0..PARTS).contains(p)) {
        order_err.push(format!("partitions used: {:?}", next.keys().collect::<Vec<_>>()));
    }
    r.check("delivery reports: per-partition offsets 0..n-1 in send order, all 3 partitions used", &order_err);
    r.check("delivery reports: each key maps to one partition", &key_err);
    out
}

fn consumer(bootstrap: &str) -> KafkaResult<BaseConsumer> {
    client_config(bootstrap)
        .set("group.id", "fjord-rdkafka-compat")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .create()
}

/// Reads every partition from Beginning via assign() until each reaches `want[p]` records (or a
/// deadline) and compares each message with what was sent at its (partition, offset).
fn consume_and_verify(
    r: &mut Report,
    c: &BaseConsumer,
    recs: &[Rec],
    delivered: &[Option<(i32, i64)>],
) {
    let mut expect: HashMap<(i32, i64), usize> = HashMap::new();
    for (i, d) in delivered.iter().enumerate() {
        if let Some(po) = d {
            expect.insert(*po, i);
        }
    }
    let mut want = [0i64; PARTS as usize];
    for (p, _) in expect.keys() {
        want[*p as usize] += 1;
    }

    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning).unwrap();
    }
    if let Err(e) = c.assign(&tpl) {
        r.fail("consumer assign() 3 partitions from Beginning", e.to_string());
        return;
    }
    r.pass("consumer assign() 3 partitions from Beginning");

    let name = format!("assign() consumer reads all {} records back", expect.len());
    let mut next = [0i64; PARTS as usize];
    let mut order_err = Vec::new();
    let mut data_err = Vec::new();
    let mut consumer_errors = Vec::new();
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = Instant::now();
    while (0..PARTS as usize).any(|p| next[p] < want[p]) && Instant::now() < deadline {
        let Some(res) = c.poll(Duration::from_millis(500)) else { continue };
        let m = match res {
            Ok(m) => m,
            Err(e) => {
                if consumer_errors.len() < 20 {
                    consumer_errors.push(e.to_string());
                }
                continue;
            }
        };
        got += 1;
        let (p, o) = (m.partition(), m.offset());
        if m.topic() != TOPIC || !(0..PARTS).contains(&p) {
            data_err.push(format!("message from unexpected {}:{p}", m.topic()));
            continue;
        }
        if o != next[p as usize] {
            order_err.push(format!("partition {p}: offset {o} after {}", next[p as usize] - 1));
        }
        next[p as usize] = o + 1;
        let Some(&i) = expect.get(&(p, o)) else {
            data_err.push(format!("{p}/{o}: no delivery report named this offset"));
            continue;
        };
        let sent = &recs[i];
        let got_rec = Rec {
            key: m.key().map(<[u8]>::to_vec).unwrap_or_default(),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default(),
            ts: m.timestamp().to_millis().unwrap_or(-1),
        };
        if m.key().is_none() {
            data_err.push(format!("{p}/{o} (record {i}): key missing"));
        }
        if got_rec.key != sent.key {
            data_err.push(format!("{p}/{o} (record {i}): key differs"));
        }
        if got_rec.value != sent.value {
            data_err.push(format!(
                "{p}/{o} (record {i}): value differs (sent {:?} bytes, got {:?})",
                sent.value.as_ref().map(Vec::len),
                got_rec.value.as_ref().map(Vec::len)
            ));
        }
        if got_rec.headers != sent.headers {
            data_err.push(format!("{p}/{o} (record {i}): headers {:?} != sent {:?}", got_rec.headers, sent.headers));
        }
        if got_rec.ts != sent.ts || !matches!(m.timestamp(), rdkafka::Timestamp::CreateTime(_)) {
            data_err.push(format!("{p}/{o} (record {i}): timestamp {:?}, sent CreateTime {}", m.timestamp(), sent.ts));
        }
    }
    eprintln!("consumed {got} records in {:.3}s", started.elapsed().as_secs_f64());
    let mut short = Vec::new();
    for p in 0..PARTS as usize {
        if next[p] != want[p] {
            short.push(format!("partition {p}: read up to offset {}, delivered {}", next[p], want[p]));
        }
    }
    if !consumer_errors.is_empty() {
        eprintln!("consumer errors while polling: {consumer_errors:?}");
    }
    short.extend(consumer_errors.iter().take(3).map(|e| format!("consumer error: {e}")));
    r.check(&name, &short);
    r.check("consumed offsets contiguous from 0 in every partition", &order_err);
    r.check("every (partition, offset) holds byte-identical key, value, headers and CreateTime timestamp", &data_err);
}

fn watermarks(r: &mut Report, c: &BaseConsumer, delivered: &[Option<(i32, i64)>]) {
    let mut errs = Vec::new();
    for p in 0..PARTS {
        let n = delivered.iter().flatten().filter(|(dp, _)| *dp == p).count() as i64;
        match c.fetch_watermarks(TOPIC, p, T) {
            Ok((lo, hi)) if lo == 0 && hi == n => {}
            Ok(w) => errs.push(format!("partition {p}: {w:?}, expected (0, {n})")),
            Err(e) => errs.push(format!("partition {p}: {e}")),
        }
    }
    r.check("fetch_watermarks: (0, records delivered) for each partition", &errs);
}

fn offsets_for_times(r: &mut Report, c: &BaseConsumer, recs: &[Rec], delivered: &[Option<(i32, i64)>]) {
    // Per partition: the (offset, timestamp) list in offset order.
    let mut per: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for (i, d) in delivered.iter().enumerate() {
        if let Some((p, o)) = d {
            per.entry(*p).or_default().push((*o, recs[i].ts));
        }
    }
    for v in per.values_mut() {
        v.sort();
    }
    let mut errs = Vec::new();
    let mut queries = 0;
    for (p, list) in &per {
        let (first_ts, last_ts) = (list[0].1, list[list.len() - 1].1);
        // Targets: before everything, exact timestamps, between timestamps, last, past the end.
        let mut targets = vec![first_ts - 1_000, first_ts, last_ts, last_ts + 1];
        for k in [1usize, 7, list.len() / 3, list.len() / 2, list.len() - 2] {
            targets.push(list[k].1);
            targets.push(list[k].1 - 1);
            targets.push(list[k].1 + 1);
        }
        for target in targets {
            let expected = match list.iter().find(|(_, ts)| *ts >= target) {
                Some((o, _)) => Offset::Offset(*o),
                None => Offset::End,
            };
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(TOPIC, *p, Offset::Offset(target)).unwrap();
            queries += 1;
            match c.offsets_for_times(tpl, T) {
                Ok(res) => match res.find_partition(TOPIC, *p) {
                    Some(e) if e.error().is_ok() && e.offset() == expected => {}
                    Some(e) => errs.push(format!(
                        "partition {p} target {target}: got {:?} ({:?}), expected {expected:?}",
                        e.offset(),
                        e.error()
                    )),
                    None => errs.push(format!("partition {p} target {target}: partition missing from result")),
                },
                Err(e) => errs.push(format!("partition {p} target {target}: {e}")),
            }
        }
    }
    r.check(
        &format!("offsets_for_times: first offset with timestamp >= target ({queries} queries, End past the last)"),
        &errs,
    );
}

fn metadata(r: &mut Report, c: &BaseConsumer, bootstrap: &str) {
    match c.fetch_metadata(None, T) {
        Ok(md) => {
            let mut errs = Vec::new();
            // orig_broker_id() is not used: librdkafka reports -1 when the answer came over the
            // bootstrap connection, before it learned the node id.
            let brokers: Vec<String> = md.brokers().iter().map(|b| format!("{}:{}", b.host(), b.port())).collect();
            if brokers != [bootstrap.to_string()] {
                errs.push(format!("brokers {brokers:?}, expected [{bootstrap}]"));
            }
            let node = md.brokers().first().map(|b| b.id()).unwrap_or(-1);
            eprintln!("metadata: orig_broker_id {} brokers {:?}", md.orig_broker_id(),
                md.brokers().iter().map(|b| (b.id(), b.host().to_string(), b.port())).collect::<Vec<_>>());
            match md.topics().iter().find(|t| t.name() == TOPIC) {
                None => errs.push(format!("{TOPIC} not listed")),
                Some(t) => {
                    if t.error().is_some() {
                        errs.push(format!("topic error {:?}", t.error()));
                    }
                    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                    ids.sort();
                    if ids != [0, 1, 2] {
                        errs.push(format!("partitions {ids:?}"));
                    }
                    for p in t.partitions() {
                        if p.error().is_some() || p.leader() != node || p.replicas() != [node] || p.isr() != [node] {
                            errs.push(format!(
                                "partition {}: leader {} replicas {:?} isr {:?} error {:?}",
                                p.id(),
                                p.leader(),
                                p.replicas(),
                                p.isr(),
                                p.error()
                            ));
                        }
                    }
                }
            }
            if md.topics().iter().any(|t| t.name() == "rdkafka-rf3") {
                errs.push("rejected topic rdkafka-rf3 exists".into());
            }
            r.check("metadata lists the one broker and the topic with 3 partitions led by it", &errs);
        }
        Err(e) => r.fail("metadata lists the one broker and the topic with 3 partitions led by it", e.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(bootstrap) = std::env::var("FJORD_BOOTSTRAP") else {
        eprintln!("FJORD_BOOTSTRAP is not set");
        return ExitCode::from(2);
    };
    let n: usize = std::env::var("RDKAFKA_RECORDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let (_, ver) = rdkafka::util::get_rdkafka_version();
    eprintln!("rdkafka crate, librdkafka {ver}, bootstrap {bootstrap}, {n} records");
    let mut r = Report { passed: 0, failed: 0 };

    if admin_checks(&mut r, &bootstrap).await {
        let base_ts = now_ms() - 3_600_000;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let recs: Vec<Rec> = (0..n).map(|i| gen_record(&mut rng, i, base_ts)).collect();
        let delivered = produce(&mut r, &bootstrap, &recs).await;
        match consumer(&bootstrap) {
            Ok(c) => {
                metadata(&mut r, &c, &bootstrap);
                watermarks(&mut r, &c, &delivered);
                offsets_for_times(&mut r, &c, &recs, &delivered);
                consume_and_verify(&mut r, &c, &recs, &delivered);
            }
            Err(e) => r.fail("consumer created", e.to_string()),
        }
    }

    eprintln!("fjord-compat-rdkafka: {} checks passed, {} failed", r.passed, r.failed);
    if r.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
