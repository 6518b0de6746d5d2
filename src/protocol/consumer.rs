//! The consumer protocol's member assignment (the bytes a classic group's leader hands each
//! member in SyncGroup): a 2-byte version, then ConsumerProtocolAssignment at that version.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;

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
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

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
