//! Produce-path cost of `records::validate::validate` per codec and batch size (16, 64 and 1000 records of 1 KiB, or RECORD_BYTES), printed as one JSON line per case so two builds can be compared as ratios; a measurement, not a test.
//!
//! cargo run --release --example validate_bench [-- SECONDS_PER_CASE [CODEC [RECORD_BYTES]]]   (RECORD_BYTES: value size, default 1024)

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fjord::records::validate::{ValidateConfig, validate};
use indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// A 1 KiB value that compresses like log lines do (words from a small vocabulary, varying numbers).
fn value(i: usize, bytes: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = ["order", "user", "status", "shipped", "amount", "eur", "region", "west", "id", "ts", "ok", "retry"];
    let mut v = Vec::with_capacity(bytes);
    let mut x = (i as u64).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    while v.len() < bytes {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.extend_from_slice(WORDS[(x >> 33) as usize % WORDS.len()].as_bytes());
        v.extend_from_slice(format!("={} ", (x >> 40) % 10_000).as_bytes());
    }
    v.truncate(bytes);
    v
}

fn batch(records: usize, record_bytes: usize, compression: Compression) -> Bytes {
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(value(i, record_bytes))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression }).expect("encodes");
    buf.freeze()
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let only = std::env::args().nth(2);
    let record_bytes: usize = std::env::args().nth(3).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let codecs = [("none", Compression::None), ("gzip", Compression::Gzip), ("snappy", Compression::Snappy), ("lz4", Compression::Lz4), ("zstd", Compression::Zstd)];
    for records in [16usize, 64, 1000] {
        for (name, codec) in codecs {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            for compacted in [false, true] {
                let b = batch(records, record_bytes, codec);
                let cfg = ValidateConfig { require_keys: compacted, ..ValidateConfig::default() };
                validate(&b, &cfg).expect("valid batch");
                let deadline = Duration::from_secs_f64(seconds);
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < deadline {
                    for _ in 0..16 {
                        std::hint::black_box(validate(std::hint::black_box(&b), &cfg).is_ok());
                    }
                    n += 16;
                }
                let secs = start.elapsed().as_secs_f64();
                let uncompressed = records * record_bytes;
                println!(
                    "{{\"codec\":\"{name}\",\"records\":{records},\"record_bytes\":{},\"compacted\":{compacted},\"batch_bytes\":{},\"batches_per_s\":{:.0},\"us_per_batch\":{:.2},\"record_mib_per_s\":{:.1}}}",
                    record_bytes,
                    b.len(),
                    n as f64 / secs,
                    secs * 1e6 / n as f64,
                    (n as f64 * uncompressed as f64) / secs / (1 << 20) as f64
                );
            }
        }
    }
}
