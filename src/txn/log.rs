//! The `__transaction_state` records in Kafka's layout: key v0 (transactional id) and value v0
//! (producer id and epoch, timeout, state, partitions, timestamps); a null value forgets the id.
//! Pure byte functions, no state.

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

/// Value v0 (v1 only adds tagged fields; Kafka reads v0).
pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.code());
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &m.partitions {
        match by_topic.last_mut() {
            Some((t, ps)) if *t == tp.topic => ps.push(tp.partition),
            _ => by_topic.push((&tp.topic, vec![tp.partition])),
        }
    }
    b.put_i32(by_topic.len() as i32);
    for (t, ps) in by_topic {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

/// Reads value v0 or v1 (whose tagged fields, at the end, are not needed).
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
    Ok(TxnMetadata { producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms })
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
        }
    }

    #[test]
    fn key_and_value_round_trip_in_kafkas_v0_layout() {
        let k = encode_key("tx");
        assert_eq!(&k[..], &[0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(k).unwrap(), "tx");
        let v = encode_value(&meta());
        // version, pid, epoch, timeout, state, 2 topics, "a" [0,1], "b" [7], two timestamps
        assert_eq!(v.len(), 2 + 8 + 2 + 4 + 1 + 4 + (3 + 4 + 8) + (3 + 4 + 4) + 16);
        assert_eq!(v[16], 1);
        assert_eq!(decode_value(v).unwrap(), meta());
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
        let v = encode_value(&meta());
        for cut in 0..v.len() {
            assert!(decode_value(v.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut bad = v.to_vec();
        bad[16] = 9;
        assert_eq!(decode_value(Bytes::from(bad)), Err(CodecError::BadState(9)));
    }
}
