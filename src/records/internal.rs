//! Uncompressed key/value batches the coordinators write to their internal topics
//! (`__consumer_offsets`, `__transaction_state`), read back with transactions resolved, and the
//! partition a coordinator key hashes to (Kafka's). Pure bytes.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

/// Java's `String.hashCode` over UTF-16 code units, so groups land where Kafka puts them.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Kafka's `Utils.abs(groupId.hashCode) % partitions` (abs of MIN_VALUE is 0 there).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A (key, value) record of an internal topic; a None value is a tombstone.
pub type KeyValue = (Bytes, Option<Bytes>);

/// Records of open transactions met while reading, by producer id, in log order: the caller
/// keeps them until a later marker decides.
pub type PendingTxnRecords = HashMap<i64, Vec<KeyValue>>;

/// One uncompressed v2 batch of (key, value) records.
pub fn encode_batch(records: &[KeyValue], now_ms: i64) -> Result<Bytes, String> {
    encode(records, now_ms, None)
}

/// The same as a transactional batch of `producer` (id, epoch): its records count once that
/// producer's commit marker follows (TxnOffsetCommit). No sequence numbers: the coordinator,
/// not a client, writes it.
pub fn encode_txn_batch(records: &[KeyValue], now_ms: i64, producer: (i64, i16)) -> Result<Bytes, String> {
    encode(records, now_ms, Some(producer))
}

fn encode(records: &[KeyValue], now_ms: i64, producer: Option<(i64, i16)>) -> Result<Bytes, String> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.is_some(),
            producer_id,
            producer_epoch,
            ..super::plain_record(i as i64, now_ms, Some(k.clone()), v.clone())
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Every record of a run of batches that counts, in order: plain records, and transactional
/// ones when their commit marker comes (aborted ones are dropped). A batch that does not
/// decode ends the run (what follows it cannot be trusted either).
pub fn decode_batches(data: Bytes) -> Result<Vec<KeyValue>, String> {
    decode_batches_with_next(data, &mut PendingTxnRecords::new()).map(|(records, _)| records)
}

/// As `decode_batches`, plus the offset after the last record (None when there was none);
/// transactions still open at the end stay in `pending` for the next call.
pub fn decode_batches_with_next(mut data: Bytes, pending: &mut PendingTxnRecords) -> Result<(Vec<KeyValue>, Option<i64>), String> {
    let mut out = vec![];
    let mut next = None;
    while data.remaining() > 0 {
        let set = RecordBatchDecoder::decode(&mut data).map_err(|e| e.to_string())?;
        for r in set.records {
            next = Some(next.unwrap_or(i64::MIN).max(r.offset + 1));
            if r.control {
                let commit = r.key.as_ref().is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 1]);
                if let Some(records) = pending.remove(&r.producer_id)
                    && commit
                {
                    out.extend(records);
                }
                continue;
            }
            if let Some(k) = r.key {
                if r.transactional {
                    pending.entry(r.producer_id).or_default().push((k, r.value));
                } else {
                    out.push((k, r.value));
                }
            }
        }
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::control::{self, ControlType, Marker};

    fn kv(k: &str, v: &str) -> KeyValue {
        (Bytes::from(k.to_string()), Some(Bytes::from(v.to_string())))
    }

    #[test]
    fn transactional_records_count_only_after_their_commit_marker() {
        let marker = |pid, control| control::encode_marker(pid, 0, Marker { control, coordinator_epoch: 0 }, 0);
        let mut log = BytesMut::new();
        log.extend_from_slice(&encode_batch(&[kv("a", "1")], 0).unwrap());
        log.extend_from_slice(&encode_txn_batch(&[kv("b", "2")], 0, (7, 0)).unwrap());
        log.extend_from_slice(&encode_txn_batch(&[kv("c", "3")], 0, (8, 0)).unwrap());
        log.extend_from_slice(&marker(8, ControlType::Abort));
        log.extend_from_slice(&encode_txn_batch(&[kv("d", "4")], 0, (9, 0)).unwrap());
        log.extend_from_slice(&marker(7, ControlType::Commit));
        let mut pending = PendingTxnRecords::new();
        // The encoder numbers each batch from 0; only the record order matters here.
        let (records, _) = decode_batches_with_next(log.freeze(), &mut pending).unwrap();
        assert_eq!(records, vec![kv("a", "1"), kv("b", "2")]);
        assert_eq!(pending.get(&9), Some(&vec![kv("d", "4")]));
        assert_eq!(pending.len(), 1);
    }
}
