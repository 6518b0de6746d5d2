//! The `__transaction_state` records in Kafka's layout: key v0 (transactional id) and value v0
//! (producer id and epoch, timeout, state, partitions, timestamps) or, once transaction.version
//! is 1 or more, the flexible value v1 with its tagged fields (KIP-890); a null value forgets the
//! id. Pure byte functions, no state.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use crate::coordinator::codec::{self, Reader};
use crate::types::TopicPartition;

/// Kafka's TransactionState, with its on-disk byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }
    pub fn from_code(c: i8) -> Option<TxnState> {
        Some(match c {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }
    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// What the coordinator keeps per transactional id (the value record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_ms: i64,
    /// When the open transaction started (its first AddPartitionsToTxn), -1 when none.
    pub start_ms: i64,
    /// Kafka's ClientTransactionVersion: 2 when the producer of the last transition speaks
    /// KIP-890 part 2 (EndTxn v5+, or partitions added by a partition leader), else 0. Tag 2 of
    /// a v1 value.
    pub client_tv: i16,
    /// The producer id before the last rotation (an epoch exhausted at the end of a KIP-890
    /// transaction), -1 when none: a retried EndTxn of the old id is recognised by it. Tag 0.
    pub previous_producer_id: i64,
    /// The producer id a Prepare state moves to once its markers are written (the epoch was
    /// exhausted), -1 when none. Tag 1.
    pub next_producer_id: i64,
}

impl TxnMetadata {
    /// A new transactional id: `producer_id` at epoch 0, Empty.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            start_ms: -1,
            client_tv: 0,
            previous_producer_id: -1,
            next_producer_id: -1,
        }
    }
}

/// A `__transaction_state` record that cannot be read: its bytes, or a state byte Kafka never writes.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Record(#[from] codec::CodecError),
    #[error("unknown transaction state {0}")]
    BadState(i8),
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub fn decode_key(b: Bytes) -> Result<String, CodecError> {
    let mut r = Reader::new(b, false);
    match r.i16()? {
        0 => Ok(r.str()?),
        v => Err(codec::CodecError::UnknownVersion(v).into()),
    }
}

/// The value version Kafka writes at a finalized transaction.version: v1 (flexible) from level 1.
pub fn value_version(transaction_version: i16) -> i16 {
    if transaction_version >= 1 { 1 } else { 0 }
}

/// The partitions grouped by topic, in order; None for an Empty state (Kafka writes null there).
fn partitions_by_topic(m: &TxnMetadata) -> Option<Vec<(&str, Vec<i32>)>> {
    if m.state == TxnState::Empty {
        return None;
    }
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &m.partitions {
        match by_topic.last_mut() {
            Some((t, ps)) if *t == tp.topic => ps.push(tp.partition),
            _ => by_topic.push((&tp.topic, vec![tp.partition])),
        }
    }
    Some(by_topic)
}

/// Value `version` (see [`value_version`]). v0 has no place for the KIP-890 fields; v1 carries
/// those that differ from their defaults as tagged fields.
pub fn encode_value(m: &TxnMetadata, version: i16) -> Bytes {
    if version >= 1 {
        return encode_value_v1(m);
    }
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.code());
    match partitions_by_topic(m) {
        None => b.put_i32(-1),
        Some(by_topic) => {
            b.put_i32(by_topic.len() as i32);
            for (t, ps) in by_topic {
                put_str(&mut b, t);
                b.put_i32(ps.len() as i32);
                for p in ps {
                    b.put_i32(p);
                }
            }
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

fn encode_value_v1(m: &TxnMetadata) -> Bytes {
    let mut w = codec::FlexWriter::new(1);
    w.i64(m.producer_id);
    w.i16(m.producer_epoch);
    w.i32(m.timeout_ms);
    w.i8(m.state.code());
    match partitions_by_topic(m) {
        None => w.uvarint(0),
        Some(by_topic) => {
            w.array_len(by_topic.len());
            for (t, ps) in by_topic {
                w.str(t);
                w.array_len(ps.len());
                for p in ps {
                    w.i32(p);
                }
                w.no_tags();
            }
        }
    }
    w.i64(m.last_update_ms);
    w.i64(m.start_ms);
    // Tagged fields in tag order, each only when it is not its default.
    let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
    if m.previous_producer_id != -1 {
        tags.push((0, m.previous_producer_id.to_be_bytes().to_vec()));
    }
    if m.next_producer_id != -1 {
        tags.push((1, m.next_producer_id.to_be_bytes().to_vec()));
    }
    if m.client_tv != 0 {
        tags.push((2, m.client_tv.to_be_bytes().to_vec()));
    }
    w.uvarint(tags.len() as u32);
    for (tag, value) in tags {
        w.uvarint(tag);
        w.uvarint(value.len() as u32);
        w.raw(&value);
    }
    w.finish()
}

/// Reads value v0 or v1 (its tagged fields: the KIP-890 ones are kept, others skipped).
pub fn decode_value(b: Bytes) -> Result<TxnMetadata, CodecError> {
    let mut r = Reader::new(b, false);
    let version = r.i16()?;
    if version != 0 && version != 1 {
        return Err(codec::CodecError::UnknownVersion(version).into());
    }
    r.set_flexible(version >= 1);
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let code = r.i8()?;
    let state = TxnState::from_code(code).ok_or(CodecError::BadState(code))?;
    let mut partitions = BTreeSet::new();
    // A topic entry is at least a length and a partition count; a partition is an i32.
    for _ in 0..r.array_len(2)? {
        let topic = r.str()?;
        for _ in 0..r.array_len(4)? {
            partitions.insert(TopicPartition::new(topic.clone(), r.i32()?));
        }
        r.skip_tags()?;
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut m = TxnMetadata { producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms, client_tv: 0, previous_producer_id: -1, next_producer_id: -1 };
    for (tag, value) in r.tags()? {
        let mut r = Reader::new(value, false);
        match tag {
            0 => m.previous_producer_id = r.i64()?,
            1 => m.next_producer_id = r.i64()?,
            2 => m.client_tv = r.i16()?,
            _ => continue,
        }
        r.finish()?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> TxnMetadata {
        TxnMetadata {
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [TopicPartition::new("a", 1), TopicPartition::new("a", 0), TopicPartition::new("b", 7)].into_iter().collect(),
            last_update_ms: 1000,
            start_ms: 900,
            client_tv: 0,
            previous_producer_id: -1,
            next_producer_id: -1,
        }
    }

    #[test]
    fn key_and_value_round_trip_in_kafkas_v0_layout() {
        let k = encode_key("tx");
        assert_eq!(&k[..], &[0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(k).unwrap(), "tx");
        let v = encode_value(&meta(), 0);
        // version, pid, epoch, timeout, state, 2 topics, "a" [0,1], "b" [7], two timestamps
        assert_eq!(v.len(), 2 + 8 + 2 + 4 + 1 + 4 + (3 + 4 + 8) + (3 + 4 + 4) + 16);
        assert_eq!(v[16], 1);
        assert_eq!(decode_value(v).unwrap(), meta());
    }

    /// Bytes from Kafka 4.0's generated TransactionLogValue (MessageUtil.toVersionPrefixedBytes).
    #[test]
    fn values_are_written_byte_for_byte_as_kafka_writes_them() {
        let ongoing = TxnMetadata { client_tv: 2, ..meta() };
        let v1 = "0001000000000000002a00030000ea600103026103000000000000000100026202000000070000000000000003e800000000000003840102020002";
        assert_eq!(encode_value(&ongoing, 1), codec::hex(v1));
        assert_eq!(decode_value(codec::hex(v1)).unwrap(), ongoing);
        let empty = TxnMetadata { state: TxnState::Empty, partitions: BTreeSet::new(), start_ms: -1, ..meta() };
        assert_eq!(encode_value(&empty, 0), codec::hex("0000000000000000002a00030000ea6000ffffffff00000000000003e8ffffffffffffffff"));
        assert_eq!(encode_value(&empty, 1), codec::hex("0001000000000000002a00030000ea60000000000000000003e8ffffffffffffffff00"));
        let tagged = TxnMetadata { previous_producer_id: 41, next_producer_id: 43, client_tv: 2, ..empty };
        let all = "0001000000000000002a00030000ea60000000000000000003e8ffffffffffffffff03000800000000000000290108000000000000002b02020002";
        assert_eq!(encode_value(&tagged, 1), codec::hex(all));
        assert_eq!(decode_value(codec::hex(all)).unwrap(), tagged);
        assert_eq!(value_version(0), 0);
        assert_eq!((value_version(1), value_version(2)), (1, 1));
    }

    #[test]
    fn every_state_has_its_kafka_byte() {
        for c in 0..8 {
            assert_eq!(TxnState::from_code(c).unwrap().code(), c);
        }
        assert_eq!(TxnState::from_code(8), None);
    }

    #[test]
    fn flexible_v1_values_decode() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(5);
        b.put_i16(1);
        b.put_i32(100);
        b.put_i8(4);
        b.put_u8(2); // one topic
        b.put_u8(2); // "t"
        b.put_u8(b't');
        b.put_u8(2); // one partition
        b.put_i32(3);
        b.put_u8(0); // topic tagged fields
        b.put_i64(10);
        b.put_i64(-1);
        b.put_u8(0); // tagged fields
        let m = decode_value(b.freeze()).unwrap();
        assert_eq!((m.producer_id, m.state, m.partitions.len(), m.start_ms), (5, TxnState::CompleteCommit, 1, -1));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert_eq!(decode_key(Bytes::new()), Err(codec::CodecError::Truncated.into()));
        assert_eq!(decode_key(Bytes::from_static(&[0, 1])), Err(codec::CodecError::UnknownVersion(1).into()));
        assert_eq!(decode_key(Bytes::from_static(&[0, 0, 0x80, 0])), Err(codec::CodecError::BadLength(-32768).into()));
        assert_eq!(decode_key(Bytes::from_static(&[0, 0, 0, 1, 0xff])), Err(codec::CodecError::BadString.into()));
        let v = encode_value(&meta(), 0);
        for cut in 0..v.len() {
            assert!(decode_value(v.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut bad = v.to_vec();
        bad[16] = 9;
        assert_eq!(decode_value(Bytes::from(bad)), Err(CodecError::BadState(9)));
    }
}
