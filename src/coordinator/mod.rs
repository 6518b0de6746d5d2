//! What the group and transaction coordinators share of Kafka's coordinator runtime: their state
//! split into one shard per partition of their internal topic (`shards.rs`). Knows nothing of
//! groups, transactions, requests or files.

pub mod shards;
