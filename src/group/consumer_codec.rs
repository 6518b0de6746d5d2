//! The values of the KIP-848 consumer-group records of `__consumer_offsets` (types 3-8), in
//! Kafka 4.0's flexible version 0 layout, byte for byte what Kafka writes for the same state:
//! group epoch, subscribed-topic metadata, member metadata, target assignment (epoch and per
//! member), and each member's current assignment. Pure bytes; topics travel by id as in Kafka.

use bytes::Bytes;
use uuid::Uuid;

use crate::coordinator::codec::{CodecError, FlexWriter, Reader};

/// Partitions by topic id, as the records store them.
pub type TopicPartitions = Vec<(Uuid, Vec<i32>)>;

/// A subscribed topic as ConsumerGroupPartitionMetadataValue stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTopic {
    pub topic_id: Uuid,
    pub name: String,
    pub partitions: i32,
}

/// ConsumerGroupMemberMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoredConsumerMember {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    /// None when the member has no regex (Kafka writes an empty string then).
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Tag 0, ClassicMemberMetadata: set for a member that speaks the classic protocol inside a
    /// consumer group (KIP-848's online migration).
    pub classic: Option<StoredClassicMember>,
}

/// ClassicMemberMetadata: what a classic member's JoinGroup said, kept so that its SyncGroup can
/// be answered in its own protocol and the group can become classic again.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoredClassicMember {
    pub session_timeout_ms: i32,
    /// (protocol name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

/// ConsumerGroupCurrentMemberAssignmentValue. `state` is Kafka's MemberState byte: 0 stable,
/// 1 unrevoked partitions, 2 unreleased partitions. A member epoch of -2 is a static member
/// that left for a while.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoredMemberAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: TopicPartitions,
    pub pending_revocation: TopicPartitions,
}

pub const MEMBER_STATE_STABLE: i8 = 0;
pub const MEMBER_STATE_UNREVOKED: i8 = 1;
pub const MEMBER_STATE_UNRELEASED: i8 = 2;

/// Every value here is version 0 of its schema.
fn start(r: &mut Reader) -> Result<(), CodecError> {
    match r.i16()? {
        0 => Ok(()),
        v => Err(CodecError::UnknownVersion(v)),
    }
}

fn put_topic_partitions(w: &mut FlexWriter, tps: &TopicPartitions) {
    w.array_len(tps.len());
    for (id, ps) in tps {
        w.uuid(id);
        w.array_len(ps.len());
        for p in ps {
            w.i32(*p);
        }
        w.no_tags();
    }
}

fn get_topic_partitions(r: &mut Reader) -> Result<TopicPartitions, CodecError> {
    // A topic: 16-byte id, a partition count, its tags.
    let n = r.array_len(16 + 1 + 1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.uuid()?;
        let count = r.array_len(4)?;
        let mut ps = Vec::with_capacity(count);
        for _ in 0..count {
            ps.push(r.i32()?);
        }
        r.skip_tags()?;
        out.push((id, ps));
    }
    Ok(out)
}

/// An epoch alone: ConsumerGroupMetadataValue (group epoch) and
/// ConsumerGroupTargetAssignmentMetadataValue (assignment epoch) share this layout.
pub fn encode_epoch(epoch: i32) -> Bytes {
    let mut w = FlexWriter::new(0);
    w.i32(epoch);
    w.no_tags();
    w.finish()
}

pub fn decode_epoch(b: Bytes) -> Result<i32, CodecError> {
    let mut r = Reader::new(b, true);
    start(&mut r)?;
    let epoch = r.i32()?;
    r.skip_tags()?;
    r.finish()?;
    Ok(epoch)
}

/// ConsumerGroupPartitionMetadataValue (without rack data: Fjord's assignors are rack-blind).
pub fn encode_partition_metadata(topics: &[StoredTopic]) -> Bytes {
    let mut w = FlexWriter::new(0);
    w.array_len(topics.len());
    for t in topics {
        w.uuid(&t.topic_id);
        w.str(&t.name);
        w.i32(t.partitions);
        w.array_len(0);
        w.no_tags();
    }
    w.no_tags();
    w.finish()
}

pub fn decode_partition_metadata(b: Bytes) -> Result<Vec<StoredTopic>, CodecError> {
    let mut r = Reader::new(b, true);
    start(&mut r)?;
    let n = r.array_len(16 + 1 + 4 + 1 + 1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic_id = r.uuid()?;
        let name = r.str()?;
        let partitions = r.i32()?;
        // Racks per partition: read and dropped.
        let racks = r.array_len(4 + 1 + 1)?;
        for _ in 0..racks {
            r.i32()?;
            let names = r.array_len(1)?;
            for _ in 0..names {
                r.str()?;
            }
            r.skip_tags()?;
        }
        r.skip_tags()?;
        out.push(StoredTopic { topic_id, name, partitions });
    }
    r.skip_tags()?;
    r.finish()?;
    Ok(out)
}

pub fn encode_member(m: &StoredConsumerMember) -> Bytes {
    let mut w = FlexWriter::new(0);
    w.nullable_str(m.instance_id.as_deref());
    w.nullable_str(m.rack_id.as_deref());
    w.str(&m.client_id);
    w.str(&m.client_host);
    w.array_len(m.subscribed_topic_names.len());
    for t in &m.subscribed_topic_names {
        w.str(t);
    }
    w.nullable_str(Some(m.subscribed_topic_regex.as_deref().unwrap_or("")));
    w.i32(m.rebalance_timeout_ms);
    w.nullable_str(m.server_assignor.as_deref());
    // Tag 0 is a nullable struct: its size, then a presence byte (0: null, 1: the struct
    // follows). Kafka 4.0 writes it for every member, null for one of the consumer protocol.
    match &m.classic {
        None => w.raw(&[1, 0, 1, 0]),
        Some(c) => {
            let mut inner = FlexWriter::new(0);
            inner.i32(c.session_timeout_ms);
            inner.array_len(c.protocols.len());
            for (name, metadata) in &c.protocols {
                inner.str(name);
                inner.bytes(metadata);
                inner.no_tags();
            }
            inner.no_tags();
            // Without the 2-byte version FlexWriter starts with.
            let body = inner.finish().slice(2..);
            w.raw(&[1, 0]);
            w.uvarint(u32::try_from(body.len() + 1).unwrap_or(u32::MAX));
            w.raw(&[1]);
            w.raw(&body);
        }
    }
    w.finish()
}

/// Tag 0 of a member's metadata: None when it is null.
fn get_classic_member(mut r: Reader) -> Result<Option<StoredClassicMember>, CodecError> {
    if r.uvarint()? == 0 {
        r.finish()?;
        return Ok(None);
    }
    let session_timeout_ms = r.i32()?;
    // A protocol: a name, its metadata, its tags (a byte each at least).
    let n = r.array_len(3)?;
    let mut protocols = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?;
        let metadata = r.bytes()?;
        r.skip_tags()?;
        protocols.push((name, metadata));
    }
    r.skip_tags()?;
    r.finish()?;
    Ok(Some(StoredClassicMember { session_timeout_ms, protocols }))
}

pub fn decode_member(b: Bytes) -> Result<StoredConsumerMember, CodecError> {
    let mut r = Reader::new(b, true);
    start(&mut r)?;
    let instance_id = r.nullable_str()?;
    let rack_id = r.nullable_str()?;
    let client_id = r.str()?;
    let client_host = r.str()?;
    let n = r.array_len(1)?;
    let mut subscribed_topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        subscribed_topic_names.push(r.str()?);
    }
    let subscribed_topic_regex = r.nullable_str()?.filter(|s| !s.is_empty());
    let rebalance_timeout_ms = r.i32()?;
    let server_assignor = r.nullable_str()?;
    let mut classic = None;
    for (tag, value) in r.tags()? {
        if tag == 0 {
            classic = get_classic_member(Reader::new(value, true))?;
        }
    }
    r.finish()?;
    Ok(StoredConsumerMember { instance_id, rack_id, client_id, client_host, subscribed_topic_names, subscribed_topic_regex, rebalance_timeout_ms, server_assignor, classic })
}

/// ConsumerGroupTargetAssignmentMemberValue.
pub fn encode_target_member(tps: &TopicPartitions) -> Bytes {
    let mut w = FlexWriter::new(0);
    put_topic_partitions(&mut w, tps);
    w.no_tags();
    w.finish()
}

pub fn decode_target_member(b: Bytes) -> Result<TopicPartitions, CodecError> {
    let mut r = Reader::new(b, true);
    start(&mut r)?;
    let tps = get_topic_partitions(&mut r)?;
    r.skip_tags()?;
    r.finish()?;
    Ok(tps)
}

pub fn encode_member_assignment(a: &StoredMemberAssignment) -> Bytes {
    let mut w = FlexWriter::new(0);
    w.i32(a.member_epoch);
    w.i32(a.previous_member_epoch);
    w.i8(a.state);
    put_topic_partitions(&mut w, &a.assigned);
    put_topic_partitions(&mut w, &a.pending_revocation);
    w.no_tags();
    w.finish()
}

pub fn decode_member_assignment(b: Bytes) -> Result<StoredMemberAssignment, CodecError> {
    let mut r = Reader::new(b, true);
    start(&mut r)?;
    let member_epoch = r.i32()?;
    let previous_member_epoch = r.i32()?;
    let state = r.i8()?;
    let assigned = get_topic_partitions(&mut r)?;
    let pending_revocation = get_topic_partitions(&mut r)?;
    r.skip_tags()?;
    r.finish()?;
    Ok(StoredMemberAssignment { member_epoch, previous_member_epoch, state, assigned, pending_revocation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::codec::hex;

    fn topic_id() -> Uuid {
        Uuid::from_bytes(*hex("f4d09fa752964a7d9cd7e826147400e1").as_ref().first_chunk::<16>().unwrap())
    }

    // The expected bytes below are the values Kafka 4.0 wrote for a two-member group "gnew"
    // subscribed to topic "rt" (4 partitions), read from its `__consumer_offsets` log.

    #[test]
    fn epochs_match_kafka() {
        assert_eq!(encode_epoch(1), hex("00000000000100"));
        assert_eq!(decode_epoch(hex("00000000000200")).unwrap(), 2);
    }

    #[test]
    fn partition_metadata_matches_kafka() {
        let topics = vec![StoredTopic { topic_id: topic_id(), name: "rt".into(), partitions: 4 }];
        let kafka = hex("000002f4d09fa752964a7d9cd7e826147400e103727400000004010000");
        assert_eq!(encode_partition_metadata(&topics), kafka);
        assert_eq!(decode_partition_metadata(kafka).unwrap(), topics);
        assert_eq!(encode_partition_metadata(&[]), hex("00000100"));
    }

    #[test]
    fn member_metadata_matches_kafka() {
        let m = StoredConsumerMember {
            client_id: "nw1".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["rt".into()],
            rebalance_timeout_ms: 300_000,
            ..Default::default()
        };
        let kafka = hex("00000000046e77310b2f3132372e302e302e310203727401000493e00001000100");
        assert_eq!(encode_member(&m), kafka);
        assert_eq!(decode_member(kafka).unwrap(), m);
        let full = StoredConsumerMember {
            instance_id: Some("i".into()),
            rack_id: Some("r".into()),
            subscribed_topic_regex: Some("t.*".into()),
            server_assignor: Some("range".into()),
            ..m
        };
        assert_eq!(decode_member(encode_member(&full)).unwrap(), full);
    }

    #[test]
    fn a_classic_members_metadata_matches_kafka() {
        // Written by Kafka 4.0's ConsumerGroupMemberMetadataValue for this member.
        let m = StoredConsumerMember {
            instance_id: Some(String::new()),
            rack_id: Some(String::new()),
            client_id: "c".into(),
            client_host: "h".into(),
            subscribed_topic_names: vec!["t".into()],
            rebalance_timeout_ms: 5,
            server_assignor: Some(String::new()),
            classic: Some(StoredClassicMember { session_timeout_ms: 10_000, protocols: vec![("range".into(), Bytes::from_static(&[1, 2, 3]))] }),
            ..Default::default()
        };
        let kafka = hex("00000101026302680202740100000005010100120100002710020672616e6765040102030000");
        assert_eq!(encode_member(&m), kafka);
        assert_eq!(decode_member(kafka.clone()).unwrap(), m);
        for n in 0..kafka.len() {
            assert!(decode_member(kafka.slice(..n)).is_err(), "cut at {n}");
        }
        // Kafka's null for a consumer-protocol member, and a value without the tag at all.
        assert_eq!(decode_member(hex("000001010263026802027401000000050101000100")).unwrap().classic, None);
        assert_eq!(decode_member(hex("000001010263026802027401000000050100")).unwrap().classic, None);
        // A protocol count past the bytes.
        assert!(decode_member(hex("0000010102630268020274010000000501010007010000271000ff0f0000")).is_err());
    }

    #[test]
    fn assignments_match_kafka() {
        let target = vec![(topic_id(), vec![0, 1, 2, 3])];
        let kafka = hex("000002f4d09fa752964a7d9cd7e826147400e105000000000000000100000002000000030000");
        assert_eq!(encode_target_member(&target), kafka);
        assert_eq!(decode_target_member(kafka).unwrap(), target);
        let current = StoredMemberAssignment { member_epoch: 1, previous_member_epoch: 0, state: MEMBER_STATE_STABLE, assigned: target, pending_revocation: vec![] };
        let kafka = hex("000000000001000000000002f4d09fa752964a7d9cd7e826147400e10500000000000000010000000200000003000100");
        assert_eq!(encode_member_assignment(&current), kafka);
        assert_eq!(decode_member_assignment(kafka).unwrap(), current);
        let revoking = StoredMemberAssignment {
            member_epoch: 1,
            previous_member_epoch: 1,
            state: MEMBER_STATE_UNREVOKED,
            assigned: vec![(topic_id(), vec![0, 1])],
            pending_revocation: vec![(topic_id(), vec![2, 3])],
        };
        assert_eq!(decode_member_assignment(encode_member_assignment(&revoking)).unwrap(), revoking);
    }

    #[test]
    fn malformed_values_are_refused() {
        let a = StoredMemberAssignment { member_epoch: 3, previous_member_epoch: 2, state: 0, assigned: vec![(topic_id(), vec![5])], pending_revocation: vec![] };
        let good = encode_member_assignment(&a);
        for n in 0..good.len() {
            assert!(decode_member_assignment(good.slice(..n)).is_err(), "cut at {n}");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(decode_member_assignment(long.into()), Err(CodecError::Trailing(1)));
        // A topic count of 2^28 in a short value.
        assert!(matches!(decode_target_member(hex("0000ffffff7f00")), Err(CodecError::BadLength(_))));
        // A partition count past the end.
        let mut bad = hex("000002f4d09fa752964a7d9cd7e826147400e1").to_vec();
        bad.extend_from_slice(&[0x7f, 0, 0]);
        assert!(decode_target_member(bad.into()).is_err());
        assert_eq!(decode_epoch(hex("00010000000100")), Err(CodecError::UnknownVersion(1)));
        let m = encode_member(&StoredConsumerMember { client_id: "c".into(), ..Default::default() });
        for n in 0..m.len() {
            assert!(decode_member(m.slice(..n)).is_err(), "cut at {n}");
        }
        let p = encode_partition_metadata(&[StoredTopic { topic_id: topic_id(), name: "t".into(), partitions: 1 }]);
        for n in 0..p.len() {
            assert!(decode_partition_metadata(p.slice(..n)).is_err(), "cut at {n}");
        }
    }
}
