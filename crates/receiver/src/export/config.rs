use std::collections::BTreeMap;

use serde::Deserialize;

/// The `[export]` section: where failure-record spans are sent.
///
/// Every field may also come from the standard OpenTelemetry exporter variables, which
/// override the file (as command-line flags do): `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
/// is) before `OTEL_EXPORTER_OTLP_ENDPOINT` (HTTP appends `/v1/traces`), and likewise the
/// `_PROTOCOL`, `_HEADERS`, `_TIMEOUT` (milliseconds) and `_COMPRESSION` variables, the
/// `_TRACES_` variant first. With no endpoint anywhere, failure records are stored but not
/// exported, and the outbox stays empty.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The OTLP endpoint, e.g. `http://127.0.0.1:4317` (gRPC) or `http://127.0.0.1:4318`
    /// (HTTP; `/v1/traces` is appended unless the URL already has a path). Default: none.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`. Default `http/protobuf`, as in the OpenTelemetry spec.
    #[serde(default)]
    pub protocol: Option<ExportProtocol>,
    /// Extra request headers (gRPC metadata), e.g. an `authorization` header. Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The timeout of one export request, in milliseconds. Default 10000.
    #[serde(default)]
    pub timeout_millis: Option<u64>,
    /// `gzip` or `none`. Default `gzip`.
    #[serde(default)]
    pub compression: Option<ExportCompression>,
    /// The most spans sent in one export request. Default 512.
    #[serde(default = "default_max_batch_spans")]
    pub max_batch_spans: usize,
    /// The first retry delay after a failed export, in milliseconds; it doubles on each
    /// further failure, with jitter. Default 200.
    #[serde(default = "default_initial_backoff_millis")]
    pub initial_backoff_millis: u64,
    /// The longest retry delay, in seconds (also caps a server's `Retry-After`). Default 60.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// How long shutdown waits for a last export attempt, in milliseconds. Default 5000.
    #[serde(default = "default_shutdown_timeout_millis")]
    pub shutdown_timeout_millis: u64,
    /// Whether the `OTEL_EXPORTER_OTLP_*` variables are read. Default true.
    #[serde(default = "default_use_env")]
    pub use_env: bool,
}

/// The OTLP transport of the exporter.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum ExportProtocol {
    /// OTLP/gRPC.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// The compression of export requests.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExportCompression {
    /// gzip.
    Gzip,
    /// No compression.
    None,
}

const fn default_max_batch_spans() -> usize {
    512
}

const fn default_initial_backoff_millis() -> u64 {
    200
}

const fn default_max_backoff_secs() -> u64 {
    60
}

const fn default_shutdown_timeout_millis() -> u64 {
    5_000
}

const fn default_use_env() -> bool {
    true
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            timeout_millis: None,
            compression: None,
            max_batch_spans: default_max_batch_spans(),
            initial_backoff_millis: default_initial_backoff_millis(),
            max_backoff_secs: default_max_backoff_secs(),
            shutdown_timeout_millis: default_shutdown_timeout_millis(),
            use_env: default_use_env(),
        }
    }
}
