//! Transaction markers: the control batch a coordinator writes to end a transaction on a partition (one record whose key is version + type and whose value is version + coordinator epoch), built and read here; no files, no policy.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::batch::HEADER_SIZE;

/// What a marker ends a transaction with (the control record key's type: 0 abort, 1 commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// A decoded transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

/// One uncompressed control batch ending a transaction of `producer_id` at `epoch`. The broker
/// assigns its offset on append, like any batch.
pub fn encode_marker(producer_id: i64, epoch: i16, marker: Marker, timestamp_ms: i64) -> Bytes {
    let kind: i16 = match marker.control {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::with_capacity(HEADER_SIZE + 32);
    // Encoding one small uncompressed record into memory cannot fail.
    RecordBatchEncoder::encode(&mut buf, std::slice::from_ref(&record), &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("a control record always encodes");
    buf.freeze()
}

/// Reads the marker of a control batch from the bytes after its header (the first record; markers
/// are never compressed). None when the bytes are not a transaction marker.
pub fn decode_marker(records: &[u8]) -> Option<Marker> {
    let mut r = Varints(records);
    let _length = r.varint()?;
    let _attributes = r.byte()?;
    let _timestamp_delta = r.varint()?;
    let _offset_delta = r.varint()?;
    let key_len = usize::try_from(r.varint()?).ok()?;
    let key = r.take(key_len)?;
    if key.len() < 4 || key[..2] != [0, 0] {
        return None;
    }
    let control = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return None,
    };
    let value_len = r.varint()?;
    let coordinator_epoch = match usize::try_from(value_len).ok().and_then(|n| r.take(n)) {
        Some(v) if v.len() >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
        _ => -1,
    };
    Some(Marker { control, coordinator_epoch })
}

/// Zig-zag varints as the record format writes them.
struct Varints<'a>(&'a [u8]);

impl<'a> Varints<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn varint(&mut self) -> Option<i64> {
        super::varint::take(&mut self.0, super::varint::LONG_BYTES_MAX)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::BatchHeader;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn markers_round_trip_and_decode_as_kafka_control_records() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let m = Marker { control, coordinator_epoch: 7 };
            let b = encode_marker(42, 3, m, 1000);
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id(), h.producer_epoch(), h.records_count()), (42, 3, 1));
            assert_eq!(h.computed_crc(), Some(h.crc()));
            assert_eq!(decode_marker(&b[HEADER_SIZE..]), Some(m));
            let set = RecordBatchDecoder::decode(&mut b.clone()).unwrap();
            assert!(set.records[0].control);
        }
    }

    #[test]
    fn garbage_is_not_a_marker() {
        assert_eq!(decode_marker(&[]), None);
        assert_eq!(decode_marker(&[0xff; 12]), None);
        // A record whose key has an unknown control type.
        let b = encode_marker(1, 0, Marker { control: ControlType::Commit, coordinator_epoch: 0 }, 0);
        let mut raw = b[HEADER_SIZE..].to_vec();
        let key_at = raw.iter().position(|x| *x == 1).unwrap();
        raw[key_at] = 9;
        assert_eq!(decode_marker(&raw), None);
    }
}
