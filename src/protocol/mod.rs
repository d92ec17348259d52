//! The Kafka wire protocol around the handlers: framing, the table of supported API versions,
//! error codes, and response encoding. Message bodies are decoded and encoded by the
//! `kafka-protocol` crate; record batches stay raw bytes for the storage crate.

pub mod api;
pub mod error_code;
pub mod frame;
