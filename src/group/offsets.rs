//! Committed offsets and the `__consumer_offsets` record codec, byte-compatible with Kafka's
//! (OffsetCommitKey v1, OffsetCommitValue v3, GroupMetadataKey v2, GroupMetadataValue v3 written
//! and v0-v4 read, the keys of the consumer-protocol records 3-8), plus the partition a group
//! hashes to. Pure bytes: the coordinator decides what to write and when.

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

/// A key of `__consumer_offsets`. The leading i16 is the record type (Kafka calls it the key
/// version): 0/1 offset commit, 2 classic group metadata, 3-8 the consumer-protocol records.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupKey {
    Offset { group: String, topic: String, partition: i32 },
    Metadata { group: String },
    /// 3 ConsumerGroupMetadata: the group epoch.
    ConsumerMetadata { group: String },
    /// 4 ConsumerGroupPartitionMetadata: the subscribed topics (id, name, partition count).
    ConsumerPartitionMetadata { group: String },
    /// 5 ConsumerGroupMemberMetadata: a member's client and subscription.
    ConsumerMember { group: String, member: String },
    /// 6 ConsumerGroupTargetAssignmentMetadata: the assignment epoch.
    ConsumerTargetMetadata { group: String },
    /// 7 ConsumerGroupTargetAssignmentMember: a member's target partitions.
    ConsumerTargetMember { group: String, member: String },
    /// 8 ConsumerGroupCurrentMemberAssignment: a member's epoch and owned partitions.
    ConsumerCurrentAssignment { group: String, member: String },
}

impl GroupKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupKey::Offset { group, .. }
            | GroupKey::Metadata { group }
            | GroupKey::ConsumerMetadata { group }
            | GroupKey::ConsumerPartitionMetadata { group }
            | GroupKey::ConsumerMember { group, .. }
            | GroupKey::ConsumerTargetMetadata { group }
            | GroupKey::ConsumerTargetMember { group, .. }
            | GroupKey::ConsumerCurrentAssignment { group, .. } => group,
        }
    }

    /// The key's bytes, as Kafka writes them (non-flexible: i16 type, i16-length strings).
    pub fn encode(&self) -> Bytes {
        let (kind, group, second): (i16, &str, Option<&str>) = match self {
            GroupKey::Offset { group, topic, partition } => return encode_offset_key(group, topic, *partition),
            GroupKey::Metadata { group } => return encode_group_key(group),
            GroupKey::ConsumerMetadata { group } => (3, group, None),
            GroupKey::ConsumerPartitionMetadata { group } => (4, group, None),
            GroupKey::ConsumerMember { group, member } => (5, group, Some(member)),
            GroupKey::ConsumerTargetMetadata { group } => (6, group, None),
            GroupKey::ConsumerTargetMember { group, member } => (7, group, Some(member)),
            GroupKey::ConsumerCurrentAssignment { group, member } => (8, group, Some(member)),
        };
        let mut b = BytesMut::new();
        b.put_i16(kind);
        put_str(&mut b, group);
        if let Some(m) = second {
            put_str(&mut b, m);
        }
        b.freeze()
    }
}

/// A classic group's metadata record (GroupMetadataValue, any version 0-4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataRecord {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 before v2.
    pub current_state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
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

pub use crate::coordinator::codec::CodecError;
use crate::coordinator::codec::Reader;

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

/// Decodes a key. Types Fjord does not keep (share and streams groups, regex records, ...) are
/// UnknownVersion: the loader skips them.
pub fn decode_key(mut b: Bytes) -> Result<GroupKey, CodecError> {
    let kind = get_i16(&mut b)?;
    let group = match kind {
        0..=8 => get_str(&mut b)?,
        v => return Err(CodecError::UnknownVersion(v)),
    };
    let key = match kind {
        0 | 1 => GroupKey::Offset { group, topic: get_str(&mut b)?, partition: get_i32(&mut b)? },
        2 => GroupKey::Metadata { group },
        3 => GroupKey::ConsumerMetadata { group },
        4 => GroupKey::ConsumerPartitionMetadata { group },
        6 => GroupKey::ConsumerTargetMetadata { group },
        5 => GroupKey::ConsumerMember { group, member: get_str(&mut b)? },
        7 => GroupKey::ConsumerTargetMember { group, member: get_str(&mut b)? },
        _ => GroupKey::ConsumerCurrentAssignment { group, member: get_str(&mut b)? },
    };
    Ok(key)
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

/// Decodes GroupMetadataValue v0-v4 whole: v1 added the rebalance timeout, v2 the state
/// timestamp, v3 the group instance id, v4 the flexible encoding. Counts and lengths are checked
/// against the bytes left before they size anything.
pub fn decode_group_value(b: Bytes) -> Result<GroupMetadataRecord, CodecError> {
    let mut r = Reader::new(b, false);
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(CodecError::UnknownVersion(version));
    }
    r.set_flexible(version >= 4);
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    // The smallest member: three empty strings, session timeout, two empty byte arrays.
    let count = r.array_len(3 + 4 + 2)?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.str()?;
        let instance_id = if version >= 3 { r.nullable_str()? } else { None };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.skip_tags()?;
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            // v0 had one timeout for both, as Kafka reads it.
            rebalance_timeout_ms: rebalance_timeout.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    r.skip_tags()?;
    Ok(GroupMetadataRecord { protocol_type, generation, protocol, leader, current_state_timestamp_ms, members })
}

#[cfg(test)]
mod tests {
    use crate::coordinator::codec::hex;
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

    fn member(id: &str, instance: Option<&str>) -> StoredMember {
        StoredMember {
            member_id: id.into(),
            instance_id: instance.map(str::to_string),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1,
            session_timeout_ms: 2,
            subscription: Bytes::from_static(b"s"),
            assignment: Bytes::from_static(b"a"),
        }
    }

    #[test]
    fn group_metadata_v3_round_trips_with_members() {
        let k = encode_group_key("grp");
        assert_eq!(decode_key(k).unwrap(), GroupKey::Metadata { group: "grp".into() });
        let members = vec![member("m1", None), member("m2", Some("i2"))];
        let v = encode_group_value("consumer", 4, Some("range"), Some("m1"), 77, &members);
        let got = decode_group_value(v).unwrap();
        assert_eq!(
            got,
            GroupMetadataRecord {
                protocol_type: "consumer".into(),
                generation: 4,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                current_state_timestamp_ms: 77,
                members
            }
        );
    }

    #[test]
    fn an_empty_group_record_written_by_kafka_decodes() {
        // Kafka 4.0's record for a new empty group (GroupMetadataValue v3), read from its log.
        let raw = [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0xa2, 0x3d, 0x13, 0x0d, 0x6d, 0x00, 0x00, 0x00, 0x00];
        let got = decode_group_value(Bytes::copy_from_slice(&raw)).unwrap();
        assert_eq!((got.protocol_type.as_str(), got.generation, got.protocol, got.leader, got.members.len()), ("", 0, None, None, 0));
        assert_eq!(got.current_state_timestamp_ms, 1_796_320_988_525);
        assert_eq!(&encode_group_value("", 0, None, None, 1_796_320_988_525, &[])[..], &raw[..]);
    }

    /// A GroupMetadataValue of an older version, built field by field.
    fn old_value(version: i16, m: &StoredMember) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(version);
        put_str(&mut b, "consumer");
        b.put_i32(9);
        put_nullable_str(&mut b, Some("range"));
        put_nullable_str(&mut b, Some(&m.member_id));
        if version >= 2 {
            b.put_i64(55);
        }
        b.put_i32(1);
        put_str(&mut b, &m.member_id);
        if version >= 3 {
            put_nullable_str(&mut b, m.instance_id.as_deref());
        }
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        if version >= 1 {
            b.put_i32(m.rebalance_timeout_ms);
        }
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
        b.freeze()
    }

    #[test]
    fn every_older_group_metadata_version_decodes() {
        let m = member("m1", None);
        for version in 0..=2 {
            let got = decode_group_value(old_value(version, &m)).unwrap();
            assert_eq!((got.generation, got.protocol.as_deref(), got.leader.as_deref()), (9, Some("range"), Some("m1")), "v{version}");
            assert_eq!(got.current_state_timestamp_ms, if version >= 2 { 55 } else { -1 });
            let want = StoredMember { rebalance_timeout_ms: if version == 0 { 2 } else { 1 }, ..m.clone() };
            assert_eq!(got.members, vec![want], "v{version}");
        }
    }

    #[test]
    fn the_flexible_group_metadata_v4_decodes() {
        let mut w = crate::coordinator::codec::FlexWriter::new(4);
        w.str("consumer");
        w.i32(3);
        w.nullable_str(Some("range"));
        w.nullable_str(None);
        w.raw(&7i64.to_be_bytes());
        w.array_len(1);
        w.str("m1");
        w.nullable_str(Some("i1"));
        w.str("c");
        w.str("h");
        w.i32(10);
        w.i32(20);
        w.uvarint(2); // compact bytes of length 1
        w.raw(b"s");
        w.uvarint(1); // empty compact bytes
        w.raw(&[1, 5, 2, 0xaa, 0xbb]); // one unknown tagged field in the member, skipped
        w.no_tags();
        let got = decode_group_value(w.finish()).unwrap();
        assert_eq!((got.generation, got.leader, got.current_state_timestamp_ms), (3, None, 7));
        let want = StoredMember {
            member_id: "m1".into(),
            instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 10,
            session_timeout_ms: 20,
            subscription: Bytes::from_static(b"s"),
            assignment: Bytes::new(),
        };
        assert_eq!(got.members, vec![want]);
    }

    #[test]
    fn malformed_group_metadata_is_refused() {
        let good = encode_group_value("consumer", 4, Some("range"), Some("m1"), 0, &[member("m1", None)]);
        // Every truncation is refused.
        for n in 0..good.len() {
            assert!(decode_group_value(good.slice(..n)).is_err(), "cut at {n}");
        }
        // A member count of 2^31-1 in a short record is refused before any allocation.
        let mut b = BytesMut::from(&encode_group_value("consumer", 4, None, None, 0, &[])[..]);
        let at = b.len() - 4;
        b[at..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(decode_group_value(b.freeze()), Err(CodecError::BadLength(_))));
        // A subscription length past the end, and a negative one.
        let mut b = BytesMut::from(&good[..]);
        let at = good.len() - (4 + 1 + 4 + 1);
        b[at..at + 4].copy_from_slice(&1_000_000i32.to_be_bytes());
        assert_eq!(decode_group_value(b.clone().freeze()), Err(CodecError::Truncated));
        b[at..at + 4].copy_from_slice(&(-7i32).to_be_bytes());
        assert_eq!(decode_group_value(b.freeze()), Err(CodecError::BadLength(-7)));
    }

    #[test]
    fn consumer_protocol_keys_match_kafkas_bytes() {
        // Type 5 key of group "gnew", member "aZp5vF-JQwGBKHhZ9_TGmw", from Kafka 4.0's log.
        let kafka = hex("00050004676e65770016615a703576462d4a517747424b48685a395f54476d77");
        let key = GroupKey::ConsumerMember { group: "gnew".into(), member: "aZp5vF-JQwGBKHhZ9_TGmw".into() };
        assert_eq!(key.encode(), kafka);
        assert_eq!(decode_key(kafka).unwrap(), key);
        assert_eq!(GroupKey::ConsumerMetadata { group: "gnew".into() }.encode(), hex("00030004676e6577"));
        for key in [
            GroupKey::ConsumerPartitionMetadata { group: "g".into() },
            GroupKey::ConsumerTargetMetadata { group: "g".into() },
            GroupKey::ConsumerTargetMember { group: "g".into(), member: "m".into() },
            GroupKey::ConsumerCurrentAssignment { group: "g".into(), member: "m".into() },
            GroupKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 },
            GroupKey::Metadata { group: "g".into() },
        ] {
            assert_eq!(decode_key(key.encode()).unwrap(), key);
            assert_eq!(key.group(), "g");
        }
        // Share/streams group records are not kept: refused, so the loader skips them.
        assert_eq!(decode_key(hex("000b0001670001")), Err(CodecError::UnknownVersion(11)));
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
