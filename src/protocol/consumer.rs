//! The consumer protocol's embedded bytes of classic groups: the subscription a member sends in
//! JoinGroup and the assignment it gets in SyncGroup, each a 2-byte version, then
//! ConsumerProtocolSubscription / ConsumerProtocolAssignment at that version.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The protocol type of groups whose members speak the consumer protocol.
pub const PROTOCOL_TYPE: &str = "consumer";

/// The highest ConsumerProtocolSubscription version kafka-protocol decodes (as for assignments).
const SUBSCRIPTION_VERSION_MAX: i16 = 3;

/// What a classic consumer's JoinGroup metadata says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The version the member wrote (its assignment is answered at the same one).
    pub version: i16,
    pub topics: Vec<String>,
    /// Partitions it reports owning (version 1 and later), by topic.
    pub owned: BTreeMap<String, BTreeSet<i32>>,
    pub rack_id: Option<String>,
}

/// A member's subscription, or None when the bytes are not one.
pub fn decode_subscription(mut metadata: Bytes) -> Option<Subscription> {
    if metadata.len() < 2 {
        return None;
    }
    let version = metadata.get_i16();
    if version < 0 {
        return None;
    }
    let s = ConsumerProtocolSubscription::decode(&mut metadata, version.min(SUBSCRIPTION_VERSION_MAX)).ok()?;
    let mut owned: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for t in s.owned_partitions {
        owned.entry(t.topic.0.to_string()).or_default().extend(t.partitions);
    }
    Some(Subscription { version, topics: s.topics.iter().map(|t| t.to_string()).collect(), owned, rack_id: s.rack_id.map(|r| r.to_string()) })
}

/// An assignment as a classic consumer of subscription `version` reads it.
pub fn encode_assignment(version: i16, partitions: &BTreeMap<String, BTreeSet<i32>>) -> Bytes {
    let version = version.clamp(0, ASSIGNMENT_VERSION_MAX);
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(t, ps)| AssignedTopic::default().with_topic(TopicName(StrBytes::from_string(t.clone()))).with_partitions(ps.iter().copied().collect()))
            .collect(),
    );
    let mut b = BytesMut::new();
    b.put_i16(version);
    // Encoding a well-formed message into memory cannot fail.
    let _ = a.encode(&mut b, version);
    b.freeze()
}

/// The highest ConsumerProtocolAssignment version kafka-protocol decodes; a newer one is read as
/// this one (later versions only add fields at the end).
const ASSIGNMENT_VERSION_MAX: i16 = 3;

/// A consumer-protocol member's assigned partitions, as (topic, partition); empty when the bytes
/// do not parse (another protocol, or a cut assignment).
pub fn assigned_partitions(mut assignment: Bytes) -> Vec<(String, i32)> {
    if assignment.len() < 2 {
        return Vec::new();
    }
    let version = assignment.get_i16().clamp(0, ASSIGNMENT_VERSION_MAX);
    match ConsumerProtocolAssignment::decode(&mut assignment, version) {
        Ok(a) => a.assigned_partitions.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p))).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;

    #[test]
    fn subscriptions_decode_and_assignments_encode_at_the_members_version() {
        use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
        for version in 0..=3i16 {
            let s = ConsumerProtocolSubscription::default()
                .with_topics(vec![StrBytes::from_static_str("a"), StrBytes::from_static_str("b")])
                .with_owned_partitions(vec![OwnedTopic::default().with_topic(TopicName(StrBytes::from_static_str("a"))).with_partitions(vec![1, 0])])
                .with_rack_id(Some(StrBytes::from_static_str("r1")));
            let mut b = BytesMut::new();
            b.put_i16(version);
            s.encode(&mut b, version).unwrap();
            let got = decode_subscription(b.freeze()).unwrap();
            assert_eq!(got.version, version);
            assert_eq!(got.topics, vec!["a", "b"]);
            assert_eq!(got.owned.get("a").map(|p| p.len()), (version >= 1).then_some(2));
            assert_eq!(got.rack_id.as_deref(), (version >= 3).then_some("r1"));
            let mut parts = BTreeMap::new();
            parts.insert("a".to_string(), BTreeSet::from([2, 0]));
            parts.insert("gone".to_string(), BTreeSet::new());
            let a = encode_assignment(version, &parts);
            assert_eq!(i16::from_be_bytes([a[0], a[1]]), version);
            assert_eq!(assigned_partitions(a), vec![("a".to_string(), 0), ("a".to_string(), 2)]);
        }
        assert_eq!(decode_subscription(Bytes::from_static(b"\x00")), None);
        assert_eq!(decode_subscription(Bytes::from_static(b"\xff\xff\x00\x00")), None);
        assert_eq!(decode_subscription(Bytes::from_static(b"\x00\x00\x7f\xff\xff\xff")), None, "a topic count past the bytes");
    }

    #[test]
    fn an_assignment_decodes_at_its_version_and_garbage_gives_none() {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![TopicPartition::default().with_topic(TopicName(StrBytes::from_static_str("t"))).with_partitions(vec![0, 2])]);
        let mut b = BytesMut::new();
        b.put_i16(1);
        a.encode(&mut b, 1).unwrap();
        assert_eq!(assigned_partitions(b.freeze()), vec![("t".to_string(), 0), ("t".to_string(), 2)]);
        assert!(assigned_partitions(Bytes::from_static(b"\x00\x01\xff")).is_empty());
        assert!(assigned_partitions(Bytes::new()).is_empty());
        assert!(assigned_partitions(Bytes::from_static(b"\x00")).is_empty());
        assert!(assigned_partitions(Bytes::from_static(b"\x00\x00\xff\xff\xff\x7f")).is_empty(), "a count past the bytes");
    }
}
