//! The failure-record exporter: an outbox table drained to an OTLP backend.

mod config;

pub use config::{ExportCompression, ExportConfig, ExportProtocol};
