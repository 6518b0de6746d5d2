//! Fjord: a Kafka-protocol broker. This file lists the modules; `Broker` wiring lives in broker/.
pub mod types;
