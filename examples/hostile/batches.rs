//! Crafted v2 record batches that lie about their records (counts, offset deltas, lengths, bombs); shared by the `hostile` example, tests/hostile_records.rs and the unit tests of src/records/walk.rs (through #[path]), never by the broker.
#![allow(dead_code)]

use std::io::Write;

/// Compression codecs by their attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

pub const ALL_CODECS: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One v2 record (length prefix included) at `offset_delta`, with an optional key and a value.
pub fn record(offset_delta: i32, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    record_at(offset_delta, 0, key, value)
}

/// One v2 record stamped `timestamp_delta` ms after its batch's base timestamp.
pub fn record_at(offset_delta: i32, timestamp_delta: i64, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    put_varint(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta as i64);
    match key {
        Some(k) => {
            put_varint(&mut body, k.len() as i64);
            body.extend_from_slice(k);
        }
        None => put_varint(&mut body, -1),
    }
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    put_varint(&mut body, 0); // headers
    let mut out = Vec::with_capacity(body.len() + 5);
    put_varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// `n` keyed records with offset deltas 0..n.
pub fn records(n: i32) -> Vec<u8> {
    (0..n).flat_map(|i| record(i, Some(format!("k{i}").as_bytes()), format!("value-{i}").as_bytes())).collect()
}

/// Compresses `raw` records the way the Java producer does (Snappy with xerial framing, LZ4 frames).
pub fn compress(codec: Codec, raw: &[u8]) -> Vec<u8> {
    match codec {
        Codec::None => raw.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(raw).expect("in memory");
            e.finish().expect("in memory")
        }
        Codec::Snappy => {
            let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
            for block in raw.chunks(32 * 1024) {
                let c = snap::raw::Encoder::new().compress_vec(block).expect("in memory");
                out.extend((c.len() as u32).to_be_bytes());
                out.extend(c);
            }
            out
        }
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new().block_mode(lz4::BlockMode::Independent).build(Vec::new()).expect("in memory");
            e.write_all(raw).expect("in memory");
            let (out, r) = e.finish();
            r.expect("in memory");
            out
        }
        Codec::Zstd => zstd::encode_all(raw, 1).expect("in memory"),
    }
}

/// A batch around already compressed `payload`, with whatever header counts the caller wants; the
/// CRC is right, so only the record checks can catch the lie.
pub fn assemble(codec: Codec, records_count: i32, last_offset_delta: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(61 + payload.len());
    b.extend(0i64.to_be_bytes()); // base offset
    b.extend(((49 + payload.len()) as i32).to_be_bytes()); // batch length
    b.extend((-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend([0u8; 4]); // crc, below
    b.extend((codec as i16).to_be_bytes());
    b.extend(last_offset_delta.to_be_bytes());
    b.extend(1_700_000_000_000i64.to_be_bytes()); // base timestamp
    b.extend(1_700_000_000_000i64.to_be_bytes()); // max timestamp
    b.extend((-1i64).to_be_bytes()); // producer id
    b.extend((-1i16).to_be_bytes()); // producer epoch
    b.extend((-1i32).to_be_bytes()); // base sequence
    b.extend(records_count.to_be_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Three records, the second stamped `ahead_ms` after the others, under a header whose base and
/// max timestamps are both `base_ms` (the max lies): only a check of every record's timestamp
/// sees the second one.
pub fn record_timestamp_ahead(codec: Codec, base_ms: i64, ahead_ms: i64) -> Vec<u8> {
    let raw: Vec<u8> = (0..3).flat_map(|i| record_at(i, if i == 1 { ahead_ms } else { 0 }, Some(b"k"), b"v")).collect();
    let mut b = assemble(codec, 3, 2, &compress(codec, &raw));
    b[27..35].copy_from_slice(&base_ms.to_be_bytes());
    b[35..43].copy_from_slice(&base_ms.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A well-formed batch of `n` keyed records.
pub fn valid(codec: Codec, n: i32) -> Vec<u8> {
    assemble(codec, n, n - 1, &compress(codec, &records(n)))
}

/// One record, a header claiming `count` (consistent lastOffsetDelta = count - 1).
pub fn lying_count(codec: Codec, count: i32) -> Vec<u8> {
    assemble(codec, count, count - 1, &compress(codec, &records(1)))
}

/// `present` records, a header claiming fewer (`count`): bytes remain after the last counted record.
pub fn count_too_small(codec: Codec, present: i32, count: i32) -> Vec<u8> {
    assemble(codec, count, count - 1, &compress(codec, &records(present)))
}

/// Three records whose offset deltas are `deltas`, header count 3 / lastOffsetDelta 2.
pub fn offset_deltas(codec: Codec, deltas: [i32; 3]) -> Vec<u8> {
    let raw: Vec<u8> = deltas.iter().flat_map(|d| record(*d, Some(b"k"), b"v")).collect();
    assemble(codec, 3, 2, &compress(codec, &raw))
}

/// One record, then a second whose length varint says `claimed` bytes but nothing follows it;
/// header count 2.
pub fn length_past_end(codec: Codec, claimed: i64) -> Vec<u8> {
    let mut raw = records(1);
    put_varint(&mut raw, claimed);
    assemble(codec, 2, 1, &compress(codec, &raw))
}

/// One record, then a length varint cut in the middle (continuation bit set on the last byte).
pub fn truncated_varint(codec: Codec) -> Vec<u8> {
    let mut raw = records(1);
    raw.extend([0xff, 0xff]);
    assemble(codec, 2, 1, &compress(codec, &raw))
}

/// Concatenated zstd frames of `total_bytes` of zeros, compressed once per MiB: tens of KiB that
/// decompress to `total_bytes`.
fn zstd_zeros(total_bytes: usize) -> Vec<u8> {
    const MIB: usize = 1 << 20;
    let frame = zstd::encode_all(&vec![0u8; MIB][..], 3).expect("in memory");
    let mut out = Vec::with_capacity(frame.len() * (total_bytes / MIB + 1));
    for _ in 0..total_bytes / MIB {
        out.extend_from_slice(&frame);
    }
    let rest = total_bytes % MIB;
    if rest > 0 {
        out.extend(zstd::encode_all(&vec![0u8; rest][..], 3).expect("in memory"));
    }
    out
}

/// zstd bomb: one keyed record whose value is `value_bytes` zeros (its length varint announces
/// them), header count 1. Decompresses to `value_bytes` and a few more.
pub fn zstd_bomb_one_record(value_bytes: usize) -> Vec<u8> {
    let mut payload = zstd::encode_all(&record_head(0, value_bytes)[..], 1).expect("in memory");
    payload.extend(zstd_zeros(value_bytes));
    payload.extend(zstd::encode_all(&[0u8][..], 1).expect("in memory")); // headers count 0
    assemble(Codec::Zstd, 1, 0, &payload)
}

/// The start of a keyed record (key "k") whose value of `value_bytes` follows separately.
fn record_head(offset_delta: i32, value_bytes: usize) -> Vec<u8> {
    let mut head = vec![0u8];
    put_varint(&mut head, 0); // timestamp delta
    put_varint(&mut head, offset_delta as i64);
    put_varint(&mut head, 1);
    head.push(b'k');
    put_varint(&mut head, value_bytes as i64);
    let body_len = head.len() + value_bytes + 1; // + headers count
    let mut raw = Vec::new();
    put_varint(&mut raw, body_len as i64);
    raw.extend(head);
    raw
}

/// zstd bomb that is a legal batch: `count` keyed records of `value_mib` MiB of zeros each,
/// consistent header and offset deltas. Built from one compressed MiB of zeros repeated, so
/// 1 GiB of records costs tens of KiB and a few milliseconds to build.
pub fn zstd_bomb_big_records(count: i32, value_mib: usize) -> Vec<u8> {
    let zeros = zstd_zeros(value_mib << 20);
    let mut payload = Vec::new();
    for i in 0..count {
        payload.extend(zstd::encode_all(&record_head(i, value_mib << 20)[..], 1).expect("in memory"));
        payload.extend_from_slice(&zeros);
        payload.extend(zstd::encode_all(&[0u8][..], 1).expect("in memory")); // headers count 0
    }
    assemble(Codec::Zstd, count, count - 1, &payload)
}

/// zstd bomb: one small record and then `zero_bytes` of zeros, header count 1. A zero byte read
/// as a record length is a zero-length record, so a reader that stops at the count never sees them.
pub fn zstd_bomb_trailing(zero_bytes: usize) -> Vec<u8> {
    let mut payload = zstd::encode_all(&records(1)[..], 1).expect("in memory");
    payload.extend(zstd_zeros(zero_bytes));
    assemble(Codec::Zstd, 1, 0, &payload)
}

/// zstd bomb: `count` keyed records of `value_bytes` zeros each, consistent header: a legal batch
/// whose records are large only once decompressed. Streams the compression (no big buffer).
pub fn zstd_bomb_many_records(count: i32, value_bytes: usize) -> Vec<u8> {
    let mut e = zstd::Encoder::new(Vec::new(), 3).expect("in memory");
    let value = vec![0u8; value_bytes];
    for i in 0..count {
        e.write_all(&record(i, Some(b"k"), &value)).expect("in memory");
    }
    let payload = e.finish().expect("in memory");
    assemble(Codec::Zstd, count, count - 1, &payload)
}

/// A batch whose compressed payload is not a valid stream of `codec` (count 1).
pub fn garbage_payload(codec: Codec) -> Vec<u8> {
    let junk: Vec<u8> = (0..64u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assemble(codec, 1, 0, &junk)
}

/// A valid compressed stream of `n` records cut in half.
pub fn truncated_stream(codec: Codec, n: i32) -> Vec<u8> {
    let full = compress(codec, &records(n));
    assemble(codec, n, n - 1, &full[..full.len() / 2])
}
