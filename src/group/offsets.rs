//! Committed offsets and the `__consumer_offsets` record codec, byte-compatible with Kafka's
//! (OffsetCommitKey v1, OffsetCommitValue v3, GroupMetadataKey v2, GroupMetadataValue v3), plus
//! the partition a group hashes to. Pure bytes: the coordinator decides what to write and when.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
pub use crate::records::internal::{PendingTxnRecords, decode_batches, decode_batches_with_next, encode_batch, encode_txn_batch, java_string_hash, partition_for};

/// One committed offset of a group for a topic-partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A group's commits by (topic, partition).
pub type OffsetStore = BTreeMap<(String, i32), CommittedOffset>;

/// A key of `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupKey {
    Offset { group: String, topic: String, partition: i32 },
    Metadata { group: String },
}

/// What a group metadata record says that a restart needs (the group comes back Empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataSummary {
    pub protocol_type: String,
    pub generation: i32,
}

/// A member as GroupMetadataValue v3 stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown schema version {0}")]
    UnknownVersion(i16),
    #[error("string is not UTF-8")]
    BadString,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn need(b: &Bytes, n: usize) -> Result<(), CodecError> {
    if b.remaining() < n {
        Err(CodecError::Truncated)
    } else {
        Ok(())
    }
}

fn get_i16(b: &mut Bytes) -> Result<i16, CodecError> {
    need(b, 2)?;
    Ok(b.get_i16())
}

fn get_i32(b: &mut Bytes) -> Result<i32, CodecError> {
    need(b, 4)?;
    Ok(b.get_i32())
}

fn get_i64(b: &mut Bytes) -> Result<i64, CodecError> {
    need(b, 8)?;
    Ok(b.get_i64())
}

fn get_nullable_str(b: &mut Bytes) -> Result<Option<String>, CodecError> {
    let len = get_i16(b)?;
    if len < 0 {
        return Ok(None);
    }
    need(b, len as usize)?;
    let raw = b.split_to(len as usize);
    String::from_utf8(raw.to_vec()).map(Some).map_err(|_| CodecError::BadString)
}

fn get_str(b: &mut Bytes) -> Result<String, CodecError> {
    Ok(get_nullable_str(b)?.unwrap_or_default())
}

pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn encode_group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(2);
    put_str(&mut b, group);
    b.freeze()
}

pub fn decode_key(mut b: Bytes) -> Result<GroupKey, CodecError> {
    match get_i16(&mut b)? {
        0 | 1 => Ok(GroupKey::Offset { group: get_str(&mut b)?, topic: get_str(&mut b)?, partition: get_i32(&mut b)? }),
        2 => Ok(GroupKey::Metadata { group: get_str(&mut b)? }),
        v => Err(CodecError::UnknownVersion(v)),
    }
}

pub fn encode_offset_value(c: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(c.offset);
    b.put_i32(c.leader_epoch);
    put_str(&mut b, &c.metadata);
    b.put_i64(c.commit_timestamp_ms);
    b.freeze()
}

/// Decodes OffsetCommitValue v0..=3 (older brokers wrote v1 with an expire timestamp).
pub fn decode_offset_value(mut b: Bytes) -> Result<CommittedOffset, CodecError> {
    let version = get_i16(&mut b)?;
    let offset = get_i64(&mut b)?;
    match version {
        0..=2 => {
            let metadata = get_str(&mut b)?;
            let commit_timestamp_ms = get_i64(&mut b)?;
            Ok(CommittedOffset { offset, leader_epoch: -1, metadata, commit_timestamp_ms })
        }
        3 => {
            let leader_epoch = get_i32(&mut b)?;
            let metadata = get_str(&mut b)?;
            let commit_timestamp_ms = get_i64(&mut b)?;
            Ok(CommittedOffset { offset, leader_epoch, metadata, commit_timestamp_ms })
        }
        v => Err(CodecError::UnknownVersion(v)),
    }
}

/// GroupMetadataValue v3.
pub fn encode_group_value(
    protocol_type: &str,
    generation: i32,
    protocol: Option<&str>,
    leader: Option<&str>,
    state_timestamp_ms: i64,
    members: &[StoredMember],
) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, protocol_type);
    b.put_i32(generation);
    put_nullable_str(&mut b, protocol);
    put_nullable_str(&mut b, leader);
    b.put_i64(state_timestamp_ms);
    b.put_i32(members.len() as i32);
    for m in members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// Reads the leading fields every GroupMetadataValue version shares; members are not restored
/// (groups come back Empty), so the rest is not parsed.
pub fn decode_group_value(mut b: Bytes) -> Result<GroupMetadataSummary, CodecError> {
    let version = get_i16(&mut b)?;
    if !(0..=4).contains(&version) {
        return Err(CodecError::UnknownVersion(version));
    }
    let protocol_type = get_str(&mut b)?;
    let generation = get_i32(&mut b)?;
    Ok(GroupMetadataSummary { protocol_type, generation })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // Values from java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Non-BMP characters count as two UTF-16 code units, as in Java.
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
        assert!((0..50).contains(&partition_for("my-group", 50)));
        assert_eq!(partition_for("a", 50), 97 % 50);
    }

    #[test]
    fn negative_hashes_and_min_value_map_like_kafka() {
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        let neg = (0..1000).map(|i| format!("a-rather-long-consumer-group-{i}")).find(|g| java_string_hash(g) < 0).unwrap();
        assert_eq!(partition_for(&neg, 50), java_string_hash(&neg).abs() % 50);
    }

    #[test]
    fn offset_key_and_value_round_trip_in_kafkas_layout() {
        let k = encode_offset_key("g", "t", 7);
        assert_eq!(&k[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(decode_key(k).unwrap(), GroupKey::Offset { group: "g".into(), topic: "t".into(), partition: 7 });
        let c = CommittedOffset { offset: 42, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms: 1000 };
        let v = encode_offset_value(&c);
        assert_eq!(v.len(), 2 + 8 + 4 + 3 + 8);
        assert_eq!(decode_offset_value(v).unwrap(), c);
    }

    #[test]
    fn older_offset_values_decode_without_leader_epoch() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(5);
        put_str(&mut b, "x");
        b.put_i64(9);
        b.put_i64(99); // v1's expire timestamp, ignored
        let c = decode_offset_value(b.freeze()).unwrap();
        assert_eq!((c.offset, c.leader_epoch, c.metadata.as_str(), c.commit_timestamp_ms), (5, -1, "x", 9));
    }

    #[test]
    fn group_metadata_round_trips_its_summary() {
        let k = encode_group_key("grp");
        assert_eq!(decode_key(k).unwrap(), GroupKey::Metadata { group: "grp".into() });
        let m = StoredMember {
            member_id: "m1".into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1,
            session_timeout_ms: 2,
            subscription: Bytes::from_static(b"s"),
            assignment: Bytes::from_static(b"a"),
        };
        let v = encode_group_value("consumer", 4, Some("range"), Some("m1"), 0, &[m]);
        assert_eq!(decode_group_value(v).unwrap(), GroupMetadataSummary { protocol_type: "consumer".into(), generation: 4 });
    }

    #[test]
    fn invalid_records_are_refused_not_panicked_on() {
        assert_eq!(decode_key(Bytes::new()), Err(CodecError::Truncated));
        assert_eq!(decode_key(Bytes::from_static(&[0, 9])), Err(CodecError::UnknownVersion(9)));
        assert_eq!(decode_key(Bytes::from_static(&[0, 1, 0, 50, b'x'])), Err(CodecError::Truncated));
        assert_eq!(decode_key(Bytes::from_static(&[0, 2, 0, 1, 0xff])), Err(CodecError::BadString));
        assert_eq!(decode_offset_value(Bytes::from_static(&[0, 3, 0, 0])), Err(CodecError::Truncated));
        assert_eq!(decode_offset_value(Bytes::from_static(&[0, 7, 0, 0, 0, 0, 0, 0, 0, 0])), Err(CodecError::UnknownVersion(7)));
        assert_eq!(decode_group_value(Bytes::from_static(&[0, 9])), Err(CodecError::UnknownVersion(9)));
        assert!(decode_batches(Bytes::from_static(&[1, 2, 3])).is_err());
    }

    #[test]
    fn batches_round_trip_records_and_tombstones() {
        let recs = vec![(encode_group_key("a"), Some(Bytes::from_static(b"v"))), (encode_group_key("b"), None)];
        let batch = encode_batch(&recs, 1).unwrap();
        assert_eq!(decode_batches(batch).unwrap(), recs);
    }
}
