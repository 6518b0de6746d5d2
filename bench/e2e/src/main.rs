//! End-to-end latency of a Kafka-protocol broker, measured with a standard client (the rdkafka
//! crate, bundled librdkafka): producer -> broker -> consumer, in one process.
//!
//! How a sample is taken:
//! - Clock: one `Instant` taken at process start; every timestamp is nanoseconds since it
//!   (CLOCK_MONOTONIC on Linux). Producer, delivery-report thread and consumer all live in this
//!   process, so they read the same clock and no clock sync is involved.
//! - Pacing: message `seq` is *scheduled* at `t0 + seq / rate`. The sender sleeps until the next
//!   scheduled time; when it wakes late (sleep granularity, a busy core, a full client queue) it
//!   sends every overdue message at once, each still stamped with its scheduled time. Latency is
//!   measured from that scheduled time, so a stall of the sender or the client is counted as
//!   latency of every message it delayed instead of being left out (no coordinated omission).
//!   `--rate 0` sends as fast as possible; then the scheduled time is the time of the send call.
//! - Payload: bytes 0..8 scheduled time, 8..16 time of the send call (the moment the record was
//!   handed to librdkafka), 16..24 sequence number, 24..32 a per-run nonce (records of other
//!   runs are ignored), then filler up to `--size`.
//! - End to end: the consumer (assigned to every partition at its high watermark before the
//!   first send, fetch.min.bytes=1, small fetch.wait.max.ms) takes `now - scheduled` on receipt.
//! - Producer ack: the delivery report (the broker's produce response, after acks) takes
//!   `now - scheduled` and `now - send call`. The latter is what `rdkafka_performance -l`
//!   reports, so the two tools can be compared.
//! - Warm-up: samples of the first `--warmup` sequence numbers are dropped. Every remaining sample
//!   is kept and sorted (no histogram bucketing), so the percentiles are exact.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{json, Value};

const HEADER_BYTES: usize = 32;
const T: Duration = Duration::from_secs(15);

static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since process start on the monotonic clock.
fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn rd(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().unwrap())
}

struct Args {
    brokers: String,
    topic: String,
    partitions: i32,
    rate: f64,
    count: Option<u64>,
    duration_s: Option<f64>,
    size: usize,
    acks: String,
    warmup: u64,
    linger_ms: String,
    fetch_wait_ms: String,
    drain_timeout_s: f64,
    json: Option<String>,
    samples_csv: Option<String>,
    label: String,
    producer_set: Vec<(String, String)>,
    consumer_set: Vec<(String, String)>,
    topic_config: Vec<(String, String)>,
}

const USAGE: &str = "fjord-bench-e2e --brokers HOST:PORT --topic T [--partitions N] [--rate MSG_S (0 = max)]
  [--count N | --duration-s S] [--size BYTES] [--acks 0|1|all] [--warmup N] [--linger-ms MS]
  [--fetch-wait-ms MS] [--drain-timeout-s S] [--json FILE] [--samples-csv FILE] [--label NAME]
  [--producer-set key=value]... [--consumer-set key=value]... [--topic-config key=value]...
Defaults: brokers 127.0.0.1:9092, topic fjord-e2e, partitions 1, rate 20000, count 200000,
size 1024, acks 1, warmup 20000, linger-ms 0, fetch-wait-ms 5, drain-timeout-s 15.
--topic-config applies when the tool creates the topic (e.g. segment.bytes=67108864).
--samples-csv writes every record (warm-up included) in sequence order: seq, scheduled send time
(ms since the first send), end-to-end and ack latency from the scheduled time (ms; empty if missing).";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        brokers: "127.0.0.1:9092".into(),
        topic: "fjord-e2e".into(),
        partitions: 1,
        rate: 20000.0,
        count: None,
        duration_s: None,
        size: 1024,
        acks: "1".into(),
        warmup: 20000,
        linger_ms: "0".into(),
        fetch_wait_ms: "5".into(),
        drain_timeout_s: 15.0,
        json: None,
        samples_csv: None,
        label: String::new(),
        producer_set: Vec::new(),
        consumer_set: Vec::new(),
        topic_config: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |s: &str| s.parse::<f64>().map_err(|e| format!("{flag} {s}: {e}"));
        let kv = |s: &str| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("{flag} wants key=value, got {s}"))
        };
        match flag.as_str() {
            "--brokers" => a.brokers = v,
            "--topic" => a.topic = v,
            "--partitions" => a.partitions = num(&v)? as i32,
            "--rate" => a.rate = num(&v)?,
            "--count" => a.count = Some(num(&v)? as u64),
            "--duration-s" => a.duration_s = Some(num(&v)?),
            "--size" => a.size = num(&v)? as usize,
            "--acks" => {
                a.acks = match v.as_str() {
                    "all" | "-1" => "all".into(),
                    "0" | "1" => v,
                    _ => return Err(format!("--acks {v}: want 0, 1 or all")),
                }
            }
            "--warmup" => a.warmup = num(&v)? as u64,
            "--linger-ms" => a.linger_ms = v,
            "--fetch-wait-ms" => a.fetch_wait_ms = v,
            "--drain-timeout-s" => a.drain_timeout_s = num(&v)?,
            "--json" => a.json = Some(v),
            "--samples-csv" => a.samples_csv = Some(v),
            "--label" => a.label = v,
            "--producer-set" => a.producer_set.push(kv(&v)?),
            "--consumer-set" => a.consumer_set.push(kv(&v)?),
            "--topic-config" => a.topic_config.push(kv(&v)?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.size < HEADER_BYTES {
        return Err(format!("--size must be at least {HEADER_BYTES} (the timestamp header)"));
    }
    if a.count.is_some() && a.duration_s.is_some() {
        return Err("give --count or --duration-s, not both".into());
    }
    if a.count.is_none() && a.duration_s.is_none() {
        a.count = Some(200_000);
    }
    if a.partitions < 1 || a.rate < 0.0 {
        return Err("--partitions >= 1 and --rate >= 0".into());
    }
    Ok(a)
}

fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "15000");
    c
}

/// One sample per record: sequence number and two latencies in nanoseconds.
#[derive(Clone, Copy)]
struct Sample {
    seq: u64,
    from_scheduled_ns: u64,
    from_send_ns: u64,
}

struct AckContext {
    nonce: u64,
    samples: Mutex<Vec<Sample>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now = now_ns();
        match result {
            Ok(m) => {
                if let Some(p) = m.payload() {
                    if p.len() >= HEADER_BYTES && rd(p, 24) == self.nonce {
                        let s = Sample {
                            seq: rd(p, 16),
                            from_scheduled_ns: now.saturating_sub(rd(p, 0)),
                            from_send_ns: now.saturating_sub(rd(p, 8)),
                        };
                        self.samples.lock().unwrap().push(s);
                    }
                }
            }
            Err((e, _)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut f = self.first_error.lock().unwrap();
                if f.is_none() {
                    *f = Some(e.to_string());
                }
            }
        }
    }
}

fn ensure_topic(a: &Args) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(&a.brokers).create().map_err(|e| format!("admin client: {e}"))?;
    // CreateTopics first: asking for the topic's metadata first would auto-create it with the
    // broker's defaults (librdkafka's metadata request allows auto-creation), losing --topic-config.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    let opts = AdminOptions::new().operation_timeout(Some(T)).request_timeout(Some(T));
    let mut nt = NewTopic::new(&a.topic, a.partitions, TopicReplication::Fixed(1));
    for (k, v) in &a.topic_config {
        nt = nt.set(k, v);
    }
    let res = rt
        .block_on(admin.create_topics(&[nt], &opts))
        .map_err(|e| format!("create_topics: {e}"))?;
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("create topic {t}: {code:?}")),
        }
    }
    // Wait until metadata shows every partition with a leader.
    let deadline = Instant::now() + T;
    loop {
        if let Ok(md) = admin.inner().fetch_metadata(Some(&a.topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == a.topic) {
                if t.partitions().len() as i32 >= a.partitions && t.partitions().iter().all(|p| p.leader() >= 0) {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("topic {} not visible in metadata", a.topic));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Quantiles {
    count: usize,
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Nearest-rank percentiles of nanosecond samples, in milliseconds.
fn quantiles(mut v: Vec<u64>) -> Option<Quantiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let ms = |ns: u64| ns as f64 / 1e6;
    let at = |p: f64| ms(v[((p * n as f64).ceil() as usize).clamp(1, n) - 1]);
    Some(Quantiles {
        count: n,
        min: ms(v[0]),
        mean: v.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1e6,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: ms(v[n - 1]),
    })
}

fn q_json(q: &Option<Quantiles>) -> Value {
    match q {
        None => Value::Null,
        Some(q) => json!({
            "count": q.count, "min_ms": q.min, "mean_ms": q.mean, "p50_ms": q.p50, "p90_ms": q.p90,
            "p99_ms": q.p99, "p99_9_ms": q.p999, "max_ms": q.max,
        }),
    }
}

fn run(a: Args) -> Result<bool, String> {
    now_ns(); // start the clock
    let (rdk_hex, rdk_ver) = rdkafka::util::get_rdkafka_version();
    ensure_topic(&a)?;

    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 ^ (std::process::id() as u64) << 48;

    // Consumer: assigned at each partition's high watermark before anything is sent.
    let mut cc = base_config(&a.brokers);
    cc.set("group.id", "fjord-bench-e2e")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", &a.fetch_wait_ms)
        .set("fetch.min.bytes", "1");
    for (k, v) in &a.consumer_set {
        cc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create().map_err(|e| format!("consumer: {e}"))?;
    let md = consumer
        .fetch_metadata(Some(&a.topic), T)
        .map_err(|e| format!("consumer metadata: {e}"))?;
    let nparts = md
        .topics()
        .iter()
        .find(|t| t.name() == a.topic)
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if nparts == 0 {
        return Err(format!("topic {} has no partitions", a.topic));
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..nparts {
        let (_, high) = consumer
            .fetch_watermarks(&a.topic, p, T)
            .map_err(|e| format!("watermarks {}-{p}: {e}", a.topic))?;
        tpl.add_partition_offset(&a.topic, p, Offset::Offset(high)).map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    // Let the consumer connect and issue its first fetches before the producer starts.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
            return Err("consumer got a record before the producer started".into());
        }
    }

    // Producer: acks and linger as given, everything else librdkafka's defaults.
    let mut pc = base_config(&a.brokers);
    pc.set("acks", &a.acks).set("linger.ms", &a.linger_ms).set("enable.idempotence", "false");
    for (k, v) in &a.producer_set {
        pc.set(k, v);
    }
    let ctx = AckContext {
        nonce,
        samples: Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<AckContext> =
        pc.create_with_context(ctx).map_err(|e| format!("producer: {e}"))?;
    producer
        .client()
        .fetch_metadata(Some(&a.topic), T)
        .map_err(|e| format!("producer metadata: {e}"))?;

    // The consumer thread: runs until told to stop, returns its samples.
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let consumer_thread = {
        let stop = stop.clone();
        let received = received.clone();
        std::thread::Builder::new()
            .name("e2e consumer".into())
            .spawn(move || {
                let mut v: Vec<Sample> = Vec::with_capacity(1 << 20);
                let mut errors = 0u64;
                let mut foreign = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match consumer.poll(Duration::from_millis(50)) {
                        Some(Ok(m)) => {
                            let now = now_ns();
                            match m.payload() {
                                Some(p) if p.len() >= HEADER_BYTES && rd(p, 24) == nonce => {
                                    v.push(Sample {
                                        seq: rd(p, 16),
                                        from_scheduled_ns: now.saturating_sub(rd(p, 0)),
                                        from_send_ns: now.saturating_sub(rd(p, 8)),
                                    });
                                    received.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => foreign += 1,
                            }
                        }
                        Some(Err(_)) => errors += 1,
                        None => {}
                    }
                }
                (v, errors, foreign)
            })
            .map_err(|e| e.to_string())?
    };

    // The paced sender.
    let mut buf = vec![0u8; a.size];
    for (i, b) in buf.iter_mut().enumerate().skip(HEADER_BYTES) {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    buf[24..32].copy_from_slice(&nonce.to_le_bytes());
    let interval_ns = if a.rate > 0.0 { 1e9 / a.rate } else { 0.0 };
    let total: u64 = match (a.count, a.duration_s) {
        (Some(c), _) => c,
        (None, Some(d)) if a.rate > 0.0 => (d * a.rate).round() as u64,
        _ => u64::MAX,
    };
    let end_ns = a.duration_s.map(|d| (d * 1e9) as u64);
    let mut queue_full = 0u64;
    let mut send_errors = 0u64;
    let mut late_wakeups_over_1ms = 0u64;
    let t0 = now_ns() + 1_000_000;
    let mut seq = 0u64;
    while seq < total {
        let now = now_ns();
        if let Some(e) = end_ns {
            if a.rate == 0.0 && now >= t0 + e {
                break;
            }
        }
        let sched = if a.rate > 0.0 {
            let s = t0 + (seq as f64 * interval_ns) as u64;
            if s > now {
                std::thread::sleep(Duration::from_nanos(s - now));
            } else if now - s > 1_000_000 {
                late_wakeups_over_1ms += 1;
            }
            s
        } else {
            now
        };
        buf[0..8].copy_from_slice(&sched.to_le_bytes());
        buf[16..24].copy_from_slice(&seq.to_le_bytes());
        loop {
            buf[8..16].copy_from_slice(&now_ns().to_le_bytes());
            match producer.send(BaseRecord::<(), [u8], ()>::to(&a.topic).payload(&buf[..])) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    queue_full += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    send_errors += 1;
                    if send_errors == 1 {
                        eprintln!("send error: {e}");
                    }
                    break;
                }
            }
        }
        seq += 1;
    }
    let send_end = now_ns();
    let sent = seq;
    producer.flush(Duration::from_secs(60)).map_err(|e| format!("flush: {e}"))?;
    let flush_end = now_ns();

    // Drain: wait until the consumer has seen every acknowledged record (or the timeout).
    let acked = producer.context().samples.lock().unwrap().len() as u64;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(a.drain_timeout_s);
    while received.load(Ordering::Relaxed) < acked && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let (e2e, consumer_errors, foreign) = consumer_thread.join().map_err(|_| "consumer thread panicked")?;
    let ctx = producer.context();
    let acks_v = ctx.samples.lock().unwrap().clone();
    let delivery_errors = ctx.errors.load(Ordering::Relaxed);

    let send_s = (send_end - t0) as f64 / 1e9;
    let achieved = sent as f64 / send_s;
    let consumed = e2e.len() as u64;
    let w = a.warmup;
    let pick = |v: &[Sample], f: fn(&Sample) -> u64| -> Vec<u64> { v.iter().filter(|s| s.seq >= w).map(f).collect() };
    let e2e_sched = quantiles(pick(&e2e, |s| s.from_scheduled_ns));
    let e2e_send = quantiles(pick(&e2e, |s| s.from_send_ns));
    let ack_sched = quantiles(pick(&acks_v, |s| s.from_scheduled_ns));
    let ack_send = quantiles(pick(&acks_v, |s| s.from_send_ns));

    let rate_s = if a.rate > 0.0 { format!("{} msg/s", a.rate) } else { "max (0 = as fast as possible)".into() };
    let label = if a.label.is_empty() { String::new() } else { format!(" [{}]", a.label) };
    println!("fjord-bench-e2e{label}: end-to-end (producer -> broker -> consumer) and producer-ack latency");
    println!(
        "  client: rdkafka crate, librdkafka {rdk_ver} (0x{rdk_hex:08x}); producer and consumer in one process"
    );
    println!(
        "  conditions: brokers={} topic={} partitions={nparts} size={} B rate={rate_s} acks={} linger.ms={} \
         fetch.wait.max.ms={} fetch.min.bytes=1 compression=none warmup={} (first seq numbers dropped)",
        a.brokers, a.topic, a.size, a.acks, a.linger_ms, a.fetch_wait_ms, a.warmup
    );
    if !a.producer_set.is_empty() || !a.consumer_set.is_empty() || !a.topic_config.is_empty() {
        println!(
            "  extra settings: producer {:?} consumer {:?} topic {:?}",
            a.producer_set, a.consumer_set, a.topic_config
        );
    }
    println!(
        "  clock: monotonic (Instant since process start), shared by producer and consumer; latency \
         is taken from each record's SCHEDULED send time (t0 + seq/rate), so sender stalls count \
         (no coordinated omission){}",
        if a.rate == 0.0 { "; at rate 0 the scheduled time is the send call" } else { "" }
    );
    println!(
        "  sent {sent} in {send_s:.2} s = {achieved:.0} msg/s ({:.1} MB/s); flush took {:.2} s; acked {acked}, \
         delivery errors {delivery_errors}, send errors {send_errors}, queue-full retries {queue_full}, \
         sender wake-ups >1 ms late {late_wakeups_over_1ms}",
        achieved * a.size as f64 / 1e6,
        (flush_end - send_end) as f64 / 1e9
    );
    println!(
        "  consumed {consumed} ({} missing), consumer errors {consumer_errors}, foreign records {foreign}",
        acked.saturating_sub(consumed)
    );
    if let Some(e) = ctx.first_error.lock().unwrap().as_ref() {
        println!("  first delivery error: {e}");
    }
    println!(
        "  {:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, q) in [
        ("end-to-end, from scheduled send", &e2e_sched),
        ("end-to-end, from send call", &e2e_send),
        ("producer ack, from scheduled send", &ack_sched),
        ("producer ack, from send call (= -l)", &ack_send),
    ] {
        match q {
            Some(q) => println!(
                "  {name:<40} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                q.count, q.p50, q.p90, q.p99, q.p999, q.max
            ),
            None => println!("  {name:<40} no samples"),
        }
    }

    let out = json!({
        "tool": "fjord-bench-e2e",
        "label": a.label,
        "client": {"library": "rdkafka crate", "librdkafka": rdk_ver},
        "conditions": {
            "brokers": a.brokers, "topic": a.topic, "partitions": nparts, "size_bytes": a.size,
            "rate_target_msg_s": a.rate, "acks": a.acks, "linger_ms": a.linger_ms,
            "fetch_wait_max_ms": a.fetch_wait_ms, "fetch_min_bytes": 1, "compression": "none",
            "warmup_records_dropped": a.warmup, "count": a.count, "duration_s": a.duration_s,
            "producer_set": a.producer_set, "consumer_set": a.consumer_set, "topic_config": a.topic_config,
            "clock": "monotonic Instant since process start, shared by producer and consumer (one process)",
            "latency_origin": "scheduled send time t0 + seq/rate (coordinated-omission corrected); at rate 0 the send call",
        },
        "sent": sent, "send_seconds": send_s, "achieved_msg_s": achieved,
        "achieved_mb_s": achieved * a.size as f64 / 1e6,
        "flush_seconds": (flush_end - send_end) as f64 / 1e9,
        "acked": acked, "delivery_errors": delivery_errors, "send_errors": send_errors,
        "queue_full_retries": queue_full, "late_wakeups_over_1ms": late_wakeups_over_1ms,
        "consumed": consumed, "missing": acked.saturating_sub(consumed), "consumer_errors": consumer_errors,
        "latency": {
            "e2e_from_scheduled": q_json(&e2e_sched),
            "e2e_from_send_call": q_json(&e2e_send),
            "ack_from_scheduled": q_json(&ack_sched),
            "ack_from_send_call": q_json(&ack_send),
        },
    });
    if let Some(path) = &a.samples_csv {
        write_samples_csv(path, sent, &e2e, &acks_v, interval_ns).map_err(|e| format!("write {path}: {e}"))?;
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&out).unwrap() + "\n")
            .map_err(|e| format!("write {path}: {e}"))?;
    }
    Ok(delivery_errors == 0 && send_errors == 0 && consumed >= acked && consumed > 0)
}

/// One line per sequence number, for finding when a stall happened.
fn write_samples_csv(
    path: &str,
    sent: u64,
    e2e: &[Sample],
    acks: &[Sample],
    interval_ns: f64,
) -> std::io::Result<()> {
    use std::io::Write;
    let n = sent as usize;
    let mut e = vec![None; n];
    let mut k = vec![None; n];
    for s in e2e.iter().filter(|s| (s.seq as usize) < n) {
        e[s.seq as usize] = Some(s.from_scheduled_ns);
    }
    for s in acks.iter().filter(|s| (s.seq as usize) < n) {
        k[s.seq as usize] = Some(s.from_scheduled_ns);
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "seq,scheduled_ms,e2e_ms,ack_ms")?;
    let ms = |v: Option<u64>| v.map(|x| format!("{:.3}", x as f64 / 1e6)).unwrap_or_default();
    for i in 0..n {
        // At rate 0 the scheduled time is not a function of seq; leave it empty.
        let at = if interval_ns > 0.0 { format!("{:.3}", i as f64 * interval_ns / 1e6) } else { String::new() };
        writeln!(w, "{i},{at},{},{}", ms(e[i]), ms(k[i]))?;
    }
    w.flush()
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("fjord-bench-e2e: errors or missing records (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("fjord-bench-e2e: {e}");
            ExitCode::FAILURE
        }
    }
}
