//! Sockets and connection lifecycle: frames in, responses out, in request order. No business rules.
pub mod connection;
pub mod listener;
pub mod sasl;
pub mod tls;
