//! The cluster metadata model: the records of the Raft-replicated metadata log (`records`), the
//! image they build (`image`) and the local changes a broker acts on between two images (`delta`).
//! Pure data and functions: no tokio, no sockets, no files.
pub mod delta;
pub mod image;
pub mod records;

pub use delta::{local_changes, CoordinatorKind, CoordinatorLoad, CoordinatorUnload, DeleteReason, LocalChanges, LocalDelete, LocalFollower, LocalLeader};
pub use image::{BrokerRegistration, ConfigResource, ImageError, MetadataImage, PartitionRegistration, ScramCredential, TopicImage};
pub use records::{decode_records, encode_records, MetadataCodecError, MetadataRecord};
