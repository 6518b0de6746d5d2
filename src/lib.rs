//! Fjord: a single-binary broker that speaks the Apache Kafka wire protocol. This file lists the
//! modules; `broker::start` wires storage -> broker -> api -> server.
pub mod api;
pub mod broker;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod group;
pub mod metadata;
pub mod txn;
pub mod protocol;
pub mod records;
pub mod server;
pub mod storage;
pub mod types;
