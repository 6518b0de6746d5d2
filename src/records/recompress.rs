//! The topic's `compression.type` applied to produced batches: a batch written in another codec is rebuilt in the topic's codec, as Kafka's LogValidator does; pure byte functions, with memory bounded by the batch size limit (never the decompressed total).
//!
//! What a rewritten batch keeps: producer id, epoch and base sequence (so idempotent dedup and
//! transactions see the same batch), the transactional flag, the partition leader epoch, every
//! record's attributes, key, value, headers and timestamp. What changes, as in Kafka's rebuild:
//! the codec bits, the base timestamp (the first record's timestamp, each record's delta taken
//! from it), the max timestamp (the largest record timestamp), the record offset deltas (0, 1,
//! 2, ...) and the CRC. Control batches (transaction markers) are never rewritten (Kafka: "do not
//! compress control records unless they are written compressed"; only the coordinator writes them,
//! uncompressed). The batch's base offset is set later by the append, as for any batch.

use std::io::{BufRead, Write};

use super::RecordsError;
use super::batch::{self, BatchHeader, BatchIter, CompressionCodec, HEADER_SIZE};
use super::validate::{ValidateConfig, ValidatedBatches, validate};
use super::varint;
use super::walk::{SCRATCH_BYTES, WalkError, with_records_stream};

/// `compression.gzip.level` range (Kafka: 1..=9, or -1 for the library default) and default.
pub const GZIP_LEVEL_MIN: i32 = 1;
pub const GZIP_LEVEL_MAX: i32 = 9;
pub const GZIP_LEVEL_DEFAULT: i32 = -1;
/// Deflate's own default, what level -1 means (java.util.zip and zlib agree).
const GZIP_LEVEL_LIBRARY_DEFAULT: u32 = 6;
/// `compression.lz4.level` range and default (Kafka's). liblz4 treats levels above 12 as 12.
pub const LZ4_LEVEL_MIN: i32 = 1;
pub const LZ4_LEVEL_MAX: i32 = 17;
pub const LZ4_LEVEL_DEFAULT: i32 = 9;
/// zstd levels above this one (the "ultra" levels) have their window and match tables capped.
const ZSTD_LEVEL_WINDOW_CAPPED_ABOVE: i32 = 19;
/// The window (log2 bytes) of level 19 on large inputs: the most an encoder here uses.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// `compression.zstd.level` range (Kafka: zstd's minimum, -2^17, to 22) and default.
pub const ZSTD_LEVEL_MIN: i32 = -131_072;
pub const ZSTD_LEVEL_MAX: i32 = 22;
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;

/// Uncompressed bytes per snappy block of the xerial framing (snappy-java's default block).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// What `compression.type` asks of stored batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicCompression {
    /// `producer`: batches are kept in the codec they were sent in (Kafka's default).
    #[default]
    Producer,
    Uncompressed,
    /// `compression.gzip.level` (-1: deflate's default).
    Gzip { level: i32 },
    Snappy,
    /// `compression.lz4.level`.
    Lz4 { level: i32 },
    /// `compression.zstd.level`.
    Zstd { level: i32 },
}

impl TopicCompression {
    /// The codec stored batches must have; None for `producer`.
    pub fn codec(&self) -> Option<CompressionCodec> {
        match self {
            TopicCompression::Producer => None,
            TopicCompression::Uncompressed => Some(CompressionCodec::None),
            TopicCompression::Gzip { .. } => Some(CompressionCodec::Gzip),
            TopicCompression::Snappy => Some(CompressionCodec::Snappy),
            TopicCompression::Lz4 { .. } => Some(CompressionCodec::Lz4),
            TopicCompression::Zstd { .. } => Some(CompressionCodec::Zstd),
        }
    }

    fn attribute_bits(&self) -> i16 {
        match self.codec() {
            Some(CompressionCodec::Gzip) => 1,
            Some(CompressionCodec::Snappy) => 2,
            Some(CompressionCodec::Lz4) => 3,
            Some(CompressionCodec::Zstd) => 4,
            _ => 0,
        }
    }
}

/// Whether any batch of `records` is to be rewritten for `target`: a client batch whose codec
/// differs. A header read per batch, nothing more: the cost on the produce path when the codecs
/// match (or the topic keeps the producer's).
pub fn needs_rewrite(records: &[u8], target: TopicCompression) -> bool {
    let Some(codec) = target.codec() else { return false };
    BatchIter::new(records).any(|framed| {
        let h = framed.header();
        !h.is_control() && h.compression() != codec
    })
}

/// Rewrites every batch of `records` (validated: framing, CRC, records matching the header)
/// whose codec differs from `target`; others are copied as they are. None when nothing differs.
/// A rewritten batch larger than `max_batch_bytes` (`max.message.bytes`) is refused with
/// MessageTooLarge as soon as its output passes the limit, as Kafka refuses it after its rebuild;
/// so the memory used is that limit plus the codecs' state, whatever the records decompress to.
pub fn recompress(records: &[u8], target: TopicCompression, max_batch_bytes: usize) -> Result<Option<Vec<u8>>, RecordsError> {
    if !needs_rewrite(records, target) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len().min(max_batch_bytes) + HEADER_SIZE);
    for framed in BatchIter::new(records) {
        let h = framed.header();
        if h.is_control() || Some(h.compression()) == target.codec() {
            out.extend_from_slice(framed.bytes);
        } else {
            rewrite_batch(framed.bytes, &h, target, max_batch_bytes, &mut out).map_err(|e| match e {
                RecordsError::InvalidRecord { reason, .. } => RecordsError::InvalidRecord { position: framed.position, reason },
                other => other,
            })?;
        }
    }
    Ok(Some(out))
}

/// The produce path's step: `records` (validated into `validated` under `limits`) as the topic
/// stores them. Unchanged (no copy) unless a batch's codec differs from `target`; a rewritten
/// request is validated again, so its summary (sizes, timestamps) describes what is stored and
/// a rebuilt batch above max.message.bytes is refused with MESSAGE_TOO_LARGE, as Kafka does.
pub fn to_topic_codec(records: &bytes::Bytes, validated: ValidatedBatches, target: TopicCompression, limits: &ValidateConfig) -> Result<(bytes::Bytes, ValidatedBatches), RecordsError> {
    match recompress(records, target, limits.max_message_bytes)? {
        None => Ok((records.clone(), validated)),
        Some(rewritten) => {
            let validated = validate(&rewritten, limits)?;
            Ok((bytes::Bytes::from(rewritten), validated))
        }
    }
}

/// Appends `batch` rebuilt in `target`'s codec to `out`.
fn rewrite_batch(batch: &[u8], h: &BatchHeader<'_>, target: TopicCompression, max_batch_bytes: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let start = out.len();
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    let limit = start + max_batch_bytes.max(HEADER_SIZE);
    let count = h.records_count();
    let old_base_timestamp = h.base_timestamp();
    let body = Capped { out, limit };
    let copied = with_records_stream(batch, |input| -> Result<(Timestamps, Capped<'_>), CopyError> {
        match target {
            TopicCompression::Producer | TopicCompression::Uncompressed => {
                let mut w = body;
                let ts = copy_records(input, count, old_base_timestamp, &mut w)?;
                Ok((ts, w))
            }
            TopicCompression::Gzip { level } => {
                let level = if level < 0 { GZIP_LEVEL_LIBRARY_DEFAULT } else { level as u32 };
                let mut w = flate2::write::GzEncoder::new(body, flate2::Compression::new(level));
                let ts = copy_records(input, count, old_base_timestamp, &mut w)?;
                Ok((ts, w.finish()?))
            }
            TopicCompression::Snappy => {
                let mut w = XerialWriter::new(body)?;
                let ts = copy_records(input, count, old_base_timestamp, &mut w)?;
                Ok((ts, w.finish()?))
            }
            TopicCompression::Lz4 { level } => {
                // Kafka's LZ4 frame: 64 KiB independent blocks, no block or content checksum.
                let mut w = lz4::EncoderBuilder::new()
                    .level(level.max(0) as u32)
                    .block_size(lz4::BlockSize::Max64KB)
                    .block_mode(lz4::BlockMode::Independent)
                    .checksum(lz4::ContentChecksum::NoChecksum)
                    .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                    .build(body)?;
                let ts = copy_records(input, count, old_base_timestamp, &mut w)?;
                let (inner, done) = w.finish();
                done?;
                Ok((ts, inner))
            }
            TopicCompression::Zstd { level } => {
                let mut w = zstd::stream::write::Encoder::new(body, level)?;
                if level > ZSTD_LEVEL_WINDOW_CAPPED_ABOVE {
                    // Levels 20-22 ask for a 128 MiB window and match tables near 1 GiB per
                    // encoder, for a batch of at most max.message.bytes: they get level 19's
                    // window and tables instead (at most ~90 MiB), with their own search effort.
                    w.window_log(ZSTD_WINDOW_LOG_MAX)?;
                    w.set_parameter(zstd::stream::raw::CParameter::ChainLog(ZSTD_WINDOW_LOG_MAX + 1))?;
                    w.set_parameter(zstd::stream::raw::CParameter::HashLog(ZSTD_WINDOW_LOG_MAX - 1))?;
                }
                let ts = copy_records(input, count, old_base_timestamp, &mut w)?;
                Ok((ts, w.finish()?))
            }
        }
    });
    let (timestamps, body) = match copied {
        Ok(Ok(done)) => done,
        Ok(Err(CopyError::Io(e))) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(RecordsError::MessageTooLarge { size: max_batch_bytes.saturating_add(1), max: max_batch_bytes });
        }
        Ok(Err(CopyError::Io(_))) => return Err(RecordsError::InvalidRecord { position: 0, reason: "compressed records do not decompress" }),
        Ok(Err(CopyError::Walk(WalkError::Invalid(reason)))) | Err(WalkError::Invalid(reason)) => {
            return Err(RecordsError::InvalidRecord { position: 0, reason });
        }
        Ok(Err(CopyError::Walk(WalkError::RecordTooLarge { size, max }))) | Err(WalkError::RecordTooLarge { size, max }) => {
            return Err(RecordsError::RecordTooLarge { size, max });
        }
    };
    let out = body.out;
    let size = out.len() - start;
    let b = &mut out[start..];
    let attributes = (h.attributes() & 0x18) | target.attribute_bits();
    b[batch::BATCH_LENGTH_OFFSET..batch::BATCH_LENGTH_OFFSET + 4].copy_from_slice(&((size - batch::LOG_OVERHEAD) as i32).to_be_bytes());
    b[batch::ATTRIBUTES_OFFSET..batch::ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    b[batch::LAST_OFFSET_DELTA_OFFSET..batch::LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&(count - 1).to_be_bytes());
    b[batch::BASE_TIMESTAMP_OFFSET..batch::BASE_TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamps.base.to_be_bytes());
    b[batch::MAX_TIMESTAMP_OFFSET..batch::MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamps.max.to_be_bytes());
    let crc = crc32c::crc32c(&b[batch::ATTRIBUTES_OFFSET..]);
    b[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// The new base timestamp (the first record's) and the largest record timestamp.
struct Timestamps {
    base: i64,
    max: i64,
}

enum CopyError {
    Walk(WalkError),
    Io(std::io::Error),
}

impl From<std::io::Error> for CopyError {
    fn from(e: std::io::Error) -> Self {
        CopyError::Io(e)
    }
}

impl From<WalkError> for CopyError {
    fn from(e: WalkError) -> Self {
        CopyError::Walk(e)
    }
}

/// Copies `count` records from `input` to `w`, each with its timestamp delta taken from the first
/// record's timestamp and offset delta = its index; everything after those two fields (key, value,
/// headers) is copied byte for byte. One record is held at a time.
fn copy_records(input: &mut dyn BufRead, count: i32, old_base_timestamp: i64, w: &mut dyn Write) -> Result<Timestamps, CopyError> {
    let mut record = Vec::new();
    let mut head = Vec::with_capacity(32);
    let mut stamps = Timestamps { base: -1, max: -1 };
    for index in 0..count {
        let length = read_varint(input)?;
        // The validation walk checked every record against max.message.bytes already; the records
        // are held one at a time, so this bounds the copy's memory too.
        if length <= 0 {
            return Err(WalkError::Invalid("record length is not positive").into());
        }
        record.clear();
        let mut left = length as usize;
        while left > 0 {
            let buf = input.fill_buf()?;
            if buf.is_empty() {
                return Err(WalkError::Invalid("record runs past the end of the records").into());
            }
            let step = buf.len().min(left);
            record.extend_from_slice(&buf[..step]);
            input.consume(step);
            left -= step;
        }
        let mut fields = &record[..];
        let attributes = *fields.first().ok_or(WalkError::Invalid("record fields run past its length"))?;
        fields = &fields[1..];
        let timestamp_delta = read_varint(&mut fields)?;
        let _offset_delta = read_varint(&mut fields)?;
        let timestamp = old_base_timestamp.wrapping_add(timestamp_delta);
        if index == 0 {
            stamps.base = timestamp;
        }
        stamps.max = stamps.max.max(timestamp);
        head.clear();
        head.push(attributes);
        varint::put(&mut head, timestamp.wrapping_sub(stamps.base));
        varint::put(&mut head, index as i64);
        let mut prefix = Vec::with_capacity(10);
        varint::put(&mut prefix, (head.len() + fields.len()) as i64);
        w.write_all(&prefix)?;
        w.write_all(&head)?;
        w.write_all(fields)?;
    }
    Ok(stamps)
}

/// A zigzag varint (up to 10 bytes).
fn read_varint(input: &mut dyn BufRead) -> Result<i64, CopyError> {
    let mut d = varint::Decoder::default();
    loop {
        let buf = input.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Err(WalkError::Invalid("fewer records than recordsCount (premature end of the records)").into());
        };
        input.consume(1);
        match d.push(b, varint::LONG_BYTES_MAX) {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(varint::TooLong) => return Err(WalkError::Invalid("varint is too long").into()),
        }
    }
}

/// The output of one rewritten batch: appends to `out` and fails (FileTooLarge) once the batch
/// would pass `limit`, so a batch that decompresses to gigabytes stops at `max.message.bytes`.
struct Capped<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
}

impl Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "rewritten batch exceeds max.message.bytes"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Snappy in the xerial framing that Kafka's broker (snappy-java's SnappyOutputStream) writes:
/// a 16-byte header, then blocks of (u32 BE compressed length, raw snappy block).
struct XerialWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
    encoder: snap::raw::Encoder,
    compressed: Vec<u8>,
}

impl<W: Write> XerialWriter<W> {
    fn new(mut inner: W) -> std::io::Result<Self> {
        inner.write_all(XERIAL_HEADER)?;
        Ok(Self { inner, pending: Vec::with_capacity(XERIAL_BLOCK_BYTES), encoder: snap::raw::Encoder::new(), compressed: Vec::new() })
    }

    fn write_block(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.compressed.resize(snap::raw::max_compress_len(self.pending.len()), 0);
        let n = self.encoder.compress(&self.pending, &mut self.compressed).map_err(std::io::Error::other)?;
        self.inner.write_all(&(n as u32).to_be_bytes())?;
        self.inner.write_all(&self.compressed[..n])?;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<W> {
        self.write_block()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for XerialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let step = buf.len().min(XERIAL_BLOCK_BYTES - self.pending.len());
        self.pending.extend_from_slice(&buf[..step]);
        if self.pending.len() == XERIAL_BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(step)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The walk's buffer bounds what a decompressor hands over at once; the rewrite holds one record
// on top of it (at most max.message.bytes, checked by the walk).
const _: () = assert!(SCRATCH_BYTES <= XERIAL_BLOCK_BYTES);

#[cfg(test)]
mod tests {
    use super::super::batch::test_support::*;
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Vec<Record> {
        let mut buf = Bytes::copy_from_slice(bytes);
        RecordBatchDecoder::decode(&mut buf).expect("decodes").records
    }

    /// What a consumer sees of a record: everything but the batch's framing.
    fn seen(r: &Record) -> (i64, i64, Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>, i64, i16, bool) {
        let headers = r.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        (r.offset, r.timestamp, r.key.clone(), r.value.clone(), headers, r.producer_id, r.producer_epoch, r.transactional)
    }

    const TARGETS: [TopicCompression; 5] = [
        TopicCompression::Uncompressed,
        TopicCompression::Gzip { level: GZIP_LEVEL_DEFAULT },
        TopicCompression::Snappy,
        TopicCompression::Lz4 { level: LZ4_LEVEL_DEFAULT },
        TopicCompression::Zstd { level: ZSTD_LEVEL_DEFAULT },
    ];
    const SOURCES: [Compression; 5] = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    #[test]
    fn every_codec_rewrites_into_every_other_keeping_records_and_producer_fields() {
        for source in SOURCES {
            let original = batch_with(50, None, source, Some((7, 3, 100)));
            for target in TARGETS {
                let rewritten = recompress(&original, target, 1 << 20).expect("rewrites");
                let h = BatchHeader::parse(&original).unwrap();
                let Some(rewritten) = rewritten else {
                    assert_eq!(Some(h.compression()), target.codec(), "only a batch in the target codec is kept");
                    continue;
                };
                let r = BatchHeader::parse(&rewritten).unwrap();
                assert_eq!(Some(r.compression()), target.codec());
                assert_eq!(r.computed_crc(), Some(r.crc()));
                assert_eq!((r.producer_id(), r.producer_epoch(), r.base_sequence(), r.records_count()), (7, 3, 100, 50));
                assert_eq!((r.last_offset_delta(), r.base_timestamp(), r.max_timestamp()), (49, 1_000, 1_049));
                assert_eq!(decode(&rewritten).iter().map(seen).collect::<Vec<_>>(), decode(&original).iter().map(seen).collect::<Vec<_>>());
                validate(&rewritten, &ValidateConfig::default()).expect("a rewritten batch passes produce validation");
            }
        }
    }

    #[test]
    fn ultra_zstd_levels_rewrite_with_a_capped_window_and_read_back() {
        let original = batch_with(200, None, Compression::Lz4, Some((7, 3, 100)));
        for level in [19, 20, 22] {
            let rewritten = recompress(&original, TopicCompression::Zstd { level }, 1 << 20).expect("rewrites").expect("lz4 -> zstd");
            assert_eq!(decode(&rewritten).iter().map(seen).collect::<Vec<_>>(), decode(&original).iter().map(seen).collect::<Vec<_>>(), "level {level}");
            validate(&rewritten, &ValidateConfig::default()).expect("valid");
        }
    }

    #[test]
    fn producer_keeps_every_batch_and_a_matching_codec_costs_nothing() {
        let zstd = batch_with(3, None, Compression::Zstd, None);
        assert_eq!(recompress(&zstd, TopicCompression::Producer, 1 << 20), Ok(None));
        assert_eq!(recompress(&zstd, TopicCompression::Zstd { level: 19 }, 1 << 20), Ok(None), "another level is no reason to rewrite (Kafka neither)");
        assert!(!needs_rewrite(&zstd, TopicCompression::Zstd { level: 1 }));
        assert!(needs_rewrite(&zstd, TopicCompression::Lz4 { level: 9 }));
    }

    #[test]
    fn transactional_flag_and_leader_epoch_are_kept_and_control_batches_are_not_rewritten() {
        let txn = transactional_batch(&[(Some("a"), Some("1")), (Some("b"), None)], 5, (9, 1, 0));
        let rewritten = recompress(&txn, TopicCompression::Zstd { level: 3 }, 1 << 20).unwrap().unwrap();
        let r = BatchHeader::parse(&rewritten).unwrap();
        assert!(r.is_transactional() && !r.is_control());
        assert_eq!(r.partition_leader_epoch(), BatchHeader::parse(&txn).unwrap().partition_leader_epoch());
        let marker = super::super::control::encode_marker(9, 1, super::super::control::Marker { control: super::super::control::ControlType::Commit, coordinator_epoch: 0 }, 5);
        assert!(!needs_rewrite(&marker, TopicCompression::Gzip { level: -1 }));
        assert_eq!(recompress(&marker, TopicCompression::Gzip { level: -1 }, 1 << 20), Ok(None));
    }

    #[test]
    fn timestamps_and_offset_deltas_are_rebuilt_as_kafka_does() {
        // An uncompressed batch may carry any offset deltas and a base timestamp below its first
        // record's; the rebuilt batch counts 0, 1, 2 and starts at the first record's timestamp.
        let records: Vec<Record> = [(0i64, 2_000i64), (5, 1_500), (9, 2_500)]
            .iter()
            .map(|&(offset, timestamp)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                // The encoder cuts a batch where offset - sequence changes.
                sequence: offset as i32 - 1,
                timestamp,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
        let rewritten = recompress(&buf, TopicCompression::Lz4 { level: 1 }, 1 << 20).unwrap().unwrap();
        let h = BatchHeader::parse(&rewritten).unwrap();
        assert_eq!((h.base_timestamp(), h.max_timestamp(), h.last_offset_delta()), (2_000, 2_500, 2));
        let back = decode(&rewritten);
        assert_eq!(back.iter().map(|r| (r.offset, r.timestamp)).collect::<Vec<_>>(), vec![(0, 2_000), (1, 1_500), (2, 2_500)]);
    }

    #[test]
    fn a_rewrite_past_max_message_bytes_stops_there_and_is_too_large() {
        // 2,000 records of 1 KiB zeros: 60 KB as zstd, 2 MB uncompressed.
        let zeros = "\0".repeat(1024);
        let records: Vec<(Option<&str>, Option<&str>)> = (0..2_000).map(|_| (Some("k"), Some(zeros.as_str()))).collect();
        let batch = keyed_batch(&records, 1, Compression::Zstd, None);
        assert!(batch.len() < 100_000);
        let max = 1_048_588;
        assert_eq!(
            recompress(&batch, TopicCompression::Uncompressed, max),
            Err(RecordsError::MessageTooLarge { size: max + 1, max })
        );
        let gz = recompress(&batch, TopicCompression::Gzip { level: 9 }, max).unwrap().unwrap();
        assert!(gz.len() < max, "compressed again it fits");
        assert_eq!(decode(&gz).len(), 2_000);
    }

    #[test]
    fn snappy_output_is_xerial_framed_in_32_kib_blocks() {
        let value = "x".repeat(100_000);
        let batch = keyed_batch(&[(Some("k"), Some(value.as_str()))], 1, Compression::None, None);
        let rewritten = recompress(&batch, TopicCompression::Snappy, 1 << 20).unwrap().unwrap();
        assert_eq!(&rewritten[HEADER_SIZE..HEADER_SIZE + 16], XERIAL_HEADER);
        assert_eq!(decode(&rewritten)[0].value.as_deref(), Some(value.as_bytes()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn decode_of_recompress_has_the_same_records(
            values in proptest::collection::vec((proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)), -5i64..5_000), 1..40),
            source in 0usize..5,
            target in 0usize..5,
        ) {
            let records: Vec<Record> = values.iter().enumerate().map(|(i, (k, v, ts))| Record {
                transactional: false, control: false, delete_horizon: false, partition_leader_epoch: -1,
                producer_id: 42, producer_epoch: 0, timestamp_type: TimestampType::Creation,
                offset: i as i64, sequence: 10 + i as i32, timestamp: 1_700_000_000_000 + ts,
                key: k.clone().map(Bytes::from), value: v.clone().map(Bytes::from),
                headers: if i % 3 == 0 { [(kafka_protocol::protocol::StrBytes::from_static_str("h"), Some(Bytes::from_static(b"1")))].into_iter().collect() } else { Default::default() },
            }).collect();
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: SOURCES[source] }).unwrap();
            let original = buf.to_vec();
            if let Some(rewritten) = recompress(&original, TARGETS[target], 1 << 20).unwrap() {
                prop_assert_eq!(decode(&rewritten).iter().map(seen).collect::<Vec<_>>(), decode(&original).iter().map(seen).collect::<Vec<_>>());
                let h = BatchHeader::parse(&rewritten).unwrap();
                prop_assert_eq!(h.base_sequence(), 10);
                prop_assert_eq!(h.computed_crc(), Some(h.crc()));
            }
        }
    }
}
