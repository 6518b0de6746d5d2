//! A borrowed view of a v2 RecordBatch header and an iterator over consecutive batches; it never decodes records and never allocates.

/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header; records start here.
pub const HEADER_SIZE: usize = 61;
/// Smallest legal `batchLength`: a header with zero records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const BATCH_LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
/// The CRC32C covers everything from the attributes to the end of the batch, so the broker may rewrite
/// base offset and leader epoch without touching it.
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The compression codec named by the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionCodec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// 5..=7: not a codec Kafka knows; validation refuses it.
    Unknown(u8),
}

impl CompressionCodec {
    /// Kafka's compression type id (batch attributes, PushTelemetry's compression_type).
    pub fn from_id(id: u8) -> CompressionCodec {
        match id {
            0 => CompressionCodec::None,
            1 => CompressionCodec::Gzip,
            2 => CompressionCodec::Snappy,
            3 => CompressionCodec::Lz4,
            4 => CompressionCodec::Zstd,
            n => CompressionCodec::Unknown(n),
        }
    }
}

/// What the batch timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// A view of the first [`HEADER_SIZE`] bytes of a batch. The slice may be just the header (as read from
/// disk during a header-only scan) or the whole batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchHeader<'a> {
    /// `None` when fewer than [`HEADER_SIZE`] bytes are given; nothing else is checked here.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() >= HEADER_SIZE).then_some(Self { bytes })
    }

    /// The bytes this view was built from (at least the header).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, BASE_OFFSET_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(self.bytes, BATCH_LENGTH_OFFSET)
    }
    /// Whole batch size on the wire / on disk. Negative lengths are clamped to 0 so callers comparing
    /// sizes never see a wrapped value; validation rejects them separately.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length().max(0) as usize
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, PARTITION_LEADER_EPOCH_OFFSET)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_OFFSET] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, CRC_OFFSET) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES_OFFSET)
    }
    pub fn compression(&self) -> CompressionCodec {
        CompressionCodec::from_id((self.attributes() & COMPRESSION_MASK) as u8)
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, LAST_OFFSET_DELTA_OFFSET)
    }
    /// baseOffset + lastOffsetDelta, saturating so corrupt input cannot overflow.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(self.last_offset_delta() as i64)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, BASE_TIMESTAMP_OFFSET)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP_OFFSET)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, PRODUCER_ID_OFFSET)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, PRODUCER_EPOCH_OFFSET)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, BASE_SEQUENCE_OFFSET)
    }
    /// Sequence of the last record; sequences wrap from i32::MAX to 0 as in Kafka.
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base < 0 {
            return base;
        }
        let last = base as i64 + self.last_offset_delta() as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, RECORDS_COUNT_OFFSET)
    }

    /// CRC32C over attributes..end, computed over the given whole-batch bytes. `None` if this view does
    /// not hold the whole batch.
    pub fn computed_crc(&self) -> Option<u32> {
        let end = self.total_size();
        if self.bytes.len() < end || end < HEADER_SIZE {
            return None;
        }
        Some(crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..end]))
    }
}

/// Rewrites the base offset of the batch starting at `batch[0]`. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch; also outside the CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with `now_ms` as max timestamp. Both fields are inside the CRC, so
/// it is recomputed; callers pass a whole batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = be_i16(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Why a [`BatchIter`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterEnd {
    /// All bytes were consumed by whole batches.
    Clean,
    /// Fewer bytes remain than a header, or than the batch's declared length (a torn tail).
    Truncated,
    /// `batchLength` is below the minimum header size: nothing after this can be framed.
    BadLength,
}

/// One framed batch yielded by [`BatchIter`].
#[derive(Debug, Clone, Copy)]
pub struct FramedBatch<'a> {
    /// Byte position of the batch within the iterated slice.
    pub position: usize,
    /// The whole batch (header and records).
    pub bytes: &'a [u8],
}

impl<'a> FramedBatch<'a> {
    pub fn header(&self) -> BatchHeader<'a> {
        BatchHeader { bytes: self.bytes }
    }
}

/// Frames consecutive batches by their `batchLength`. It checks framing only (no CRC, no magic), stops
/// without panicking at the first batch that does not fit, and reports where valid framing ended.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
    end: Option<IterEnd>,
}

impl<'a> BatchIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            position: 0,
            end: None,
        }
    }
    /// Bytes consumed by the whole batches yielded so far.
    pub fn valid_end(&self) -> usize {
        self.position
    }
    /// Why iteration stopped; `None` while batches remain.
    pub fn end(&self) -> Option<IterEnd> {
        self.end
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = FramedBatch<'a>;

    fn next(&mut self) -> Option<FramedBatch<'a>> {
        if self.end.is_some() {
            return None;
        }
        let rest = &self.bytes[self.position..];
        if rest.is_empty() {
            self.end = Some(IterEnd::Clean);
            return None;
        }
        if rest.len() < LOG_OVERHEAD {
            self.end = Some(IterEnd::Truncated);
            return None;
        }
        let length = be_i32(rest, BATCH_LENGTH_OFFSET);
        if length < MIN_BATCH_LENGTH {
            self.end = Some(IterEnd::BadLength);
            return None;
        }
        let total = LOG_OVERHEAD + length as usize;
        if rest.len() < total {
            self.end = Some(IterEnd::Truncated);
            return None;
        }
        let batch = FramedBatch {
            position: self.position,
            bytes: &rest[..total],
        };
        self.position += total;
        Some(batch)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builds real batches with kafka-protocol's encoder so tests exercise the format producers send.
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// One batch of `count` records with timestamps `ts0, ts0+1, ...` unless `timestamps` is given.
    pub fn batch_with(
        count: usize,
        timestamps: Option<&[i64]>,
        compression: Compression,
        producer: Option<(i64, i16, i32)>,
    ) -> Vec<u8> {
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder splits batches where offset - sequence changes, so non-idempotent
                // records count up from -1 (base sequence -1 in the header).
                sequence: if seq < 0 {
                    -1 + i as i32
                } else {
                    seq.wrapping_add(i as i32)
                },
                timestamp: timestamps.map(|t| t[i]).unwrap_or(1_000 + i as i64),
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 20 + i % 7])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    pub fn simple_batch(count: usize) -> Vec<u8> {
        batch_with(count, None, Compression::None, None)
    }

    /// One batch of (key, value) records (None: null), all at timestamp `ts`; `producer` as in
    /// `batch_with`.
    pub fn keyed_batch(
        records: &[(Option<&str>, Option<&str>)],
        ts: i64,
        compression: Compression,
        producer: Option<(i64, i16, i32)>,
    ) -> Vec<u8> {
        keyed(records, ts, compression, producer, false)
    }

    /// As `keyed_batch`, in a transaction of `producer` (id, epoch, first sequence).
    pub fn transactional_batch(records: &[(Option<&str>, Option<&str>)], ts: i64, producer: (i64, i16, i32)) -> Vec<u8> {
        keyed(records, ts, Compression::None, Some(producer), true)
    }

    fn keyed(
        records: &[(Option<&str>, Option<&str>)],
        ts: i64,
        compression: Compression,
        producer: Option<(i64, i16, i32)>,
        transactional: bool,
    ) -> Vec<u8> {
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if seq < 0 { -1 + i as i32 } else { seq.wrapping_add(i as i32) },
                timestamp: ts,
                key: k.map(|k| Bytes::from(k.to_string())),
                value: v.map(|v| Bytes::from(v.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
            .expect("encode");
        buf.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_accessors_read_an_encoded_batch() {
        let b = batch_with(
            3,
            Some(&[10, 30, 20]),
            kafka_protocol::records::Compression::None,
            Some((7, 2, 5)),
        );
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!(h.magic(), 2);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.records_count(), 3);
        assert_eq!(h.last_offset_delta(), 2);
        assert_eq!(h.max_timestamp(), 30);
        assert_eq!(h.base_timestamp(), 10);
        assert_eq!(h.producer_id(), 7);
        assert_eq!(h.producer_epoch(), 2);
        assert_eq!(h.base_sequence(), 5);
        assert_eq!(h.last_sequence(), 7);
        assert_eq!(h.compression(), CompressionCodec::None);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional() && !h.is_control());
        assert_eq!(h.computed_crc(), Some(h.crc()));
    }

    #[test]
    fn base_offset_and_leader_epoch_are_outside_the_crc() {
        let mut b = simple_batch(2);
        set_base_offset(&mut b, 1234);
        set_partition_leader_epoch(&mut b, 9);
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!(h.base_offset(), 1234);
        assert_eq!(h.last_offset(), 1235);
        assert_eq!(h.partition_leader_epoch(), 9);
        assert_eq!(h.computed_crc(), Some(h.crc()));
    }

    #[test]
    fn log_append_time_recomputes_the_crc() {
        let mut b = simple_batch(2);
        set_log_append_time(&mut b, 99_999);
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp(), 99_999);
        assert_eq!(h.computed_crc(), Some(h.crc()));
    }

    #[test]
    fn last_sequence_wraps_at_i32_max() {
        let b = batch_with(
            3,
            None,
            kafka_protocol::records::Compression::None,
            Some((1, 0, i32::MAX - 1)),
        );
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!(h.last_sequence(), 0);
    }

    #[test]
    fn short_input_has_no_header() {
        assert!(BatchHeader::parse(&[0u8; 60]).is_none());
    }

    #[test]
    fn iterator_stops_at_every_torn_tail_position() {
        let mut all = simple_batch(2);
        let first_len = all.len();
        all.extend(simple_batch(3));
        for cut in first_len..all.len() {
            let mut it = BatchIter::new(&all[..cut]);
            assert_eq!(it.by_ref().count(), 1);
            assert_eq!(it.valid_end(), first_len);
            let want = if cut == first_len {
                IterEnd::Clean
            } else {
                IterEnd::Truncated
            };
            assert_eq!(it.end(), Some(want), "cut at {cut}");
        }
        let mut it = BatchIter::new(&all);
        assert_eq!(it.by_ref().count(), 2);
        assert_eq!(it.end(), Some(IterEnd::Clean));
    }

    #[test]
    fn iterator_rejects_a_length_below_the_header() {
        let mut b = simple_batch(1);
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        let mut it = BatchIter::new(&b);
        assert!(it.next().is_none());
        assert_eq!(it.end(), Some(IterEnd::BadLength));
        assert_eq!(it.valid_end(), 0);
    }

    proptest! {
        #[test]
        fn iterator_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut it = BatchIter::new(&bytes);
            for b in it.by_ref() {
                let h = b.header();
                let _ = (h.last_offset(), h.last_sequence(), h.computed_crc(), h.compression());
            }
            prop_assert!(it.valid_end() <= bytes.len());
            prop_assert!(it.end().is_some());
        }
    }
}
