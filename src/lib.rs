//! Fjord: a single-binary broker that speaks the Apache Kafka wire protocol. This file lists the
//! modules; `node::start` wires storage -> broker -> api -> server.
pub mod api;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod fault_log;
pub mod group;
pub mod http;
pub mod metrics;
pub mod metadata;
pub mod node;
pub mod txn;
pub mod protocol;
pub mod raft;
pub mod records;
pub mod server;
pub mod storage;
pub mod types;
