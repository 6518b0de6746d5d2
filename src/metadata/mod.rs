//! The cluster metadata model: the records of the Raft-replicated metadata log (`records`), the
//! image they build (`image`) and the local changes a broker acts on between two images (`delta`).
//! Pure data and functions: no tokio, no sockets, no files.
pub mod delta;
pub mod image;
pub mod records;

pub use delta::{local_changes, CoordinatorKind, CoordinatorLoad, CoordinatorUnload, DeleteReason, LocalChanges, LocalDelete, LocalFollower, LocalLeader};
pub use image::{BrokerRegistration, ConfigResource, ImageError, MetadataImage, PartitionRegistration, ScramCredential, TopicImage};
pub use records::{decode_records, encode_records, MetadataCodecError, MetadataRecord};

/// The longest topic name Kafka accepts.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// Why Kafka 4.0 refuses `name` as a topic name (INVALID_TOPIC_EXCEPTION), in its words (checked
/// with kafka-topics.sh --create against the reference Kafka 4.0); None for a valid name: at most
/// 249 characters of [a-zA-Z0-9._-], not empty, "." or "..".
pub fn topic_name_refusal(name: &str) -> Option<String> {
    Some(if name.is_empty() {
        "Topic name is invalid: the empty string is not allowed".to_string()
    } else if name == "." || name == ".." {
        format!("Topic name is invalid: '{name}' is not allowed")
    } else if name.len() > TOPIC_NAME_LENGTH_MAX {
        format!("Topic name is invalid: the length of '{name}' is longer than the max allowed length {TOPIC_NAME_LENGTH_MAX}")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        format!("Topic name is invalid: '{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'")
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_refused_in_kafka_4_0s_words() {
        assert_eq!(topic_name_refusal("orders.v1_x-2"), None);
        assert_eq!(topic_name_refusal(&"a".repeat(249)), None);
        // What the reference Kafka 4.0 answered kafka-topics.sh --create with.
        assert_eq!(topic_name_refusal(".").as_deref(), Some("Topic name is invalid: '.' is not allowed"));
        assert_eq!(topic_name_refusal("..").as_deref(), Some("Topic name is invalid: '..' is not allowed"));
        assert_eq!(topic_name_refusal("a/b").as_deref(), Some("Topic name is invalid: 'a/b' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"));
        let long = "a".repeat(250);
        assert_eq!(topic_name_refusal(&long), Some(format!("Topic name is invalid: the length of '{long}' is longer than the max allowed length 249")));
        assert_eq!(topic_name_refusal("").as_deref(), Some("Topic name is invalid: the empty string is not allowed"));
    }
}
