//! Sends crafted record batches (lying counts, bad offset deltas, bombs) to a running broker over the Kafka wire and prints what each got; for scripts/chaos.sh and for comparing with Kafka. Never part of the broker.
//!
//! cargo run --release --example hostile -- --bootstrap 127.0.0.1:9092 [--case NAME]... [--list]
//! A case name also selects its variants (`--case lying-count-compact` runs the uncompressed, gzip
//! and zstd ones); no --case runs them all. Creates the topics it uses (hostile-normal,
//! hostile-compact; one partition each). Kafka 4.0's answers are in tests/hostile_records.rs and
//! src/records/walk.rs.
//! One line per case: `case=<name> topic=<topic> error=<code> hw_before=<n> hw_after=<n> message=<...>`.
//! Exit status: 0 when the broker still answers after the cases, 1 when it does not (crashed),
//! 2 on bad arguments.

mod batches;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use batches::Codec;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

const NORMAL_TOPIC: &str = "hostile-normal";
const COMPACT_TOPIC: &str = "hostile-compact";
const GIB: usize = 1 << 30;

/// (case name, compacted topic?, batch builder).
type Case = (&'static str, bool, fn() -> Vec<u8>);

fn cases() -> Vec<Case> {
    vec![
        ("lying-count", false, || batches::lying_count(Codec::None, i32::MAX)),
        ("lying-count-1m", false, || batches::lying_count(Codec::None, 1_000_000)),
        ("lying-count-2", false, || batches::lying_count(Codec::None, 2)),
        ("lying-count-gzip", false, || batches::lying_count(Codec::Gzip, i32::MAX)),
        ("lying-count-zstd", false, || batches::lying_count(Codec::Zstd, i32::MAX)),
        ("lying-count-lz4", false, || batches::lying_count(Codec::Lz4, 2)),
        ("lying-count-snappy", false, || batches::lying_count(Codec::Snappy, 2)),
        ("lying-count-compact", true, || batches::lying_count(Codec::None, i32::MAX)),
        ("lying-count-compact-gzip", true, || batches::lying_count(Codec::Gzip, i32::MAX)),
        ("lying-count-compact-zstd", true, || batches::lying_count(Codec::Zstd, i32::MAX)),
        ("count-too-small", false, || batches::count_too_small(Codec::None, 2, 1)),
        ("count-too-small-zstd", false, || batches::count_too_small(Codec::Zstd, 2, 1)),
        ("count-too-small-compact", true, || batches::count_too_small(Codec::None, 2, 1)),
        ("offset-deltas-0-0-2", false, || batches::offset_deltas(Codec::None, [0, 0, 2])),
        ("offset-deltas-0-2-1", false, || batches::offset_deltas(Codec::None, [0, 2, 1])),
        ("offset-deltas-1-2-3", false, || batches::offset_deltas(Codec::None, [1, 2, 3])),
        ("offset-deltas-0-0-2-zstd", false, || batches::offset_deltas(Codec::Zstd, [0, 0, 2])),
        ("offset-deltas-0-0-2-compact", true, || batches::offset_deltas(Codec::None, [0, 0, 2])),
        ("offset-deltas-0-0-2-compact-zstd", true, || batches::offset_deltas(Codec::Zstd, [0, 0, 2])),
        ("offset-deltas-1-2-3-lz4", false, || batches::offset_deltas(Codec::Lz4, [1, 2, 3])),
        ("length-past-end", false, || batches::length_past_end(Codec::None, 32)),
        ("length-past-end-gzip", false, || batches::length_past_end(Codec::Gzip, 32)),
        ("length-zero", false, || batches::length_past_end(Codec::None, 0)),
        ("length-negative", false, || batches::length_past_end(Codec::None, -5)),
        ("truncated-varint", false, || batches::truncated_varint(Codec::None)),
        ("truncated-varint-lz4", false, || batches::truncated_varint(Codec::Lz4)),
        ("zstd-bomb-compact", true, || batches::zstd_bomb_one_record(GIB)),
        ("zstd-bomb", false, || batches::zstd_bomb_one_record(GIB)),
        ("zstd-bomb-trailing-compact", true, || batches::zstd_bomb_trailing(GIB)),
        ("zstd-bomb-big-records-compact", true, || batches::zstd_bomb_big_records(256, 4)),
        ("zstd-bomb-records-compact", true, || batches::zstd_bomb_many_records(1 << 15, 32 << 10)),
        ("garbage-gzip", false, || batches::garbage_payload(Codec::Gzip)),
        ("garbage-snappy", false, || batches::garbage_payload(Codec::Snappy)),
        ("garbage-lz4", false, || batches::garbage_payload(Codec::Lz4)),
        ("garbage-zstd", false, || batches::garbage_payload(Codec::Zstd)),
        ("truncated-stream-gzip", false, || batches::truncated_stream(Codec::Gzip, 50)),
        ("truncated-stream-snappy", false, || batches::truncated_stream(Codec::Snappy, 50)),
        ("truncated-stream-lz4", false, || batches::truncated_stream(Codec::Lz4, 50)),
        ("truncated-stream-zstd", false, || batches::truncated_stream(Codec::Zstd, 50)),
        ("lz4-valid", false, || batches::valid(Codec::Lz4, 3)),
        ("snappy-valid-compact", true, || batches::valid(Codec::Snappy, 3)),
        ("gzip-valid-compact", true, || batches::valid(Codec::Gzip, 3)),
        // message.timestamp.after.max.ms is 1 hour by default: a record 2 hours ahead of now,
        // hidden under a header whose max timestamp is now.
        ("record-timestamp-ahead", false, || batches::record_timestamp_ahead(Codec::None, now_ms(), 2 * 3_600_000)),
        ("record-timestamp-ahead-zstd", false, || batches::record_timestamp_ahead(Codec::Zstd, now_ms(), 2 * 3_600_000)),
        ("valid", false, || batches::valid(Codec::None, 3)),
        ("valid-compact-zstd", true, || batches::valid(Codec::Zstd, 3)),
    ]
}

struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    fn connect(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn { stream, correlation_id: 0 })
    }

    fn send<R: Request>(&mut self, req: &R, version: i16) -> std::io::Result<R::Response> {
        self.correlation_id += 1;
        let key = ApiKey::try_from(R::KEY).expect("known key");
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("hostile")));
        let mut body = BytesMut::new();
        header.encode(&mut body, key.request_header_version(version)).map_err(other)?;
        req.encode(&mut body, version).map_err(other)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        self.stream.read_exact(&mut buf)?;
        let mut resp = Bytes::from(buf);
        let hv = if key == ApiKey::ApiVersions { 0 } else { key.response_header_version(version) };
        let h = ResponseHeader::decode(&mut resp, hv).map_err(other)?;
        if h.correlation_id != self.correlation_id {
            return Err(other("correlation id mismatch"));
        }
        R::Response::decode(&mut resp, version).map_err(other)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn other<E: std::fmt::Display>(e: E) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topic(c: &mut Conn, name: &str, compact: bool) -> std::io::Result<()> {
    let mut t = create_topics_request::CreatableTopic::default().with_name(topic_name(name)).with_num_partitions(1).with_replication_factor(1);
    if compact {
        t.configs.push(
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_value(Some(StrBytes::from_static_str("compact"))),
        );
    }
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7)?;
    let code = resp.topics.first().map(|t| t.error_code).unwrap_or(-1);
    // 36: TOPIC_ALREADY_EXISTS from an earlier run.
    if code != 0 && code != 36 {
        return Err(other(format!("CreateTopics {name}: error {code}")));
    }
    Ok(())
}

fn high_watermark(c: &mut Conn, topic: &str) -> std::io::Result<i64> {
    let p = list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1);
    let t = list_offsets_request::ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![p]);
    let resp = c.send(&ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![t]), 7)?;
    let p = &resp.topics[0].partitions[0];
    if p.error_code != 0 {
        return Err(other(format!("ListOffsets {topic}: error {}", p.error_code)));
    }
    Ok(p.offset)
}

/// (error code, error message, record errors as "index:message").
fn produce(c: &mut Conn, topic: &str, records: Vec<u8>) -> std::io::Result<(i16, String, String)> {
    let pd = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(records)));
    let td = produce_request::TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![pd]);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![td]);
    let resp = c.send(&req, 9)?;
    let p = &resp.responses[0].partition_responses[0];
    let errors: Vec<String> = p
        .record_errors
        .iter()
        .map(|e| format!("{}:{}", e.batch_index, e.batch_index_error_message.as_ref().map(|m| m.as_str()).unwrap_or("")))
        .collect();
    Ok((p.error_code, p.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default(), errors.join("|")))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut bootstrap = "127.0.0.1:9092".to_string();
    let mut wanted: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bootstrap" => bootstrap = args.next().unwrap_or_default(),
            "--case" => wanted.push(args.next().unwrap_or_default()),
            "--list" => {
                for (name, _, _) in cases() {
                    println!("{name}");
                }
                return;
            }
            _ => {
                eprintln!("usage: hostile --bootstrap HOST:PORT [--case NAME]... [--list]");
                std::process::exit(2);
            }
        }
    }
    let all = cases();
    // A name selects its case and its variants: `lying-count-compact` runs -compact, -compact-gzip
    // and -compact-zstd.
    let selects = |w: &String, name: &str| name == w || name.strip_prefix(w.as_str()).is_some_and(|rest| rest.starts_with('-'));
    let chosen: Vec<&Case> = if wanted.is_empty() { all.iter().collect() } else { all.iter().filter(|c| wanted.iter().any(|w| selects(w, c.0))).collect() };
    if wanted.iter().any(|w| !all.iter().any(|c| selects(w, c.0))) {
        eprintln!("unknown case among {wanted:?}; --list names them");
        std::process::exit(2);
    }
    let mut setup = match Conn::connect(&bootstrap) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect to {bootstrap}: {e}");
            std::process::exit(1);
        }
    };
    for (topic, compact) in [(NORMAL_TOPIC, false), (COMPACT_TOPIC, true)] {
        if let Err(e) = create_topic(&mut setup, topic, compact) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    for (name, compact, build) in chosen {
        let topic = if *compact { COMPACT_TOPIC } else { NORMAL_TOPIC };
        let batch = build();
        let size = batch.len();
        // A fresh connection per case, so one case closing it does not hide the next.
        let outcome = Conn::connect(&bootstrap).and_then(|mut c| {
            let before = high_watermark(&mut c, topic)?;
            let (code, message, record_errors) = produce(&mut c, topic, batch)?;
            let after = high_watermark(&mut c, topic)?;
            Ok((code, before, after, message, record_errors))
        });
        match outcome {
            Ok((code, before, after, message, record_errors)) => {
                println!("case={name} topic={topic} batch_bytes={size} error={code} hw_before={before} hw_after={after} message={message:?} record_errors={record_errors:?}")
            }
            Err(e) => println!("case={name} topic={topic} batch_bytes={size} error=none io_error={e:?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let alive = Conn::connect(&bootstrap).and_then(|mut c| c.send(&ApiVersionsRequest::default(), 0)).is_ok();
    println!("broker_alive={alive}");
    if !alive {
        std::process::exit(1);
    }
}
