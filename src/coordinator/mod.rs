//! What the group and transaction coordinators share of Kafka's coordinator runtime: their state
//! split into one shard per partition of their internal topic (`shards.rs`), the typed error of
//! their log seams (`log_error.rs`) and the byte primitives of their record schemas (`codec.rs`).
//! Knows nothing of groups, transactions, requests or files.

pub mod codec;
pub mod log_error;
pub mod shards;

pub use log_error::LogError;
