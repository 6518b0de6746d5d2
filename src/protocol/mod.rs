//! Pure byte functions around kafka-protocol: frames, headers, the supported-version table.
//! No tokio, no disk.
pub mod chain;
pub mod consumer;
pub mod frame;
pub mod header;
pub mod versions;
