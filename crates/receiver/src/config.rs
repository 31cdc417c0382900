//! The `closedloop` configuration file.
//!
//! A TOML file with one table per component. Every field is optional; an empty file gives the
//! defaults documented on each field. Unknown keys are errors, so a typo never goes unnoticed.
//! `closedloop.example.toml` at the repository root lists every field with its default.
//!
//! Precedence, highest first: command-line flags, `CLOSEDLOOP_*` environment variables, the
//! file, the defaults. The flags and variables that exist are listed by `closedloop serve --help`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::detectors::DetectorsConfig;
use crate::export::ExportConfig;
use crate::join::JoinConfig;
use crate::otlp::budget::DecodeLimits;
use crate::pipeline::PipelineConfig;
use crate::review::ReviewConfig;
use crate::store::StoreConfig;
use crate::triage::{NotifyConfig, TriageConfig};

/// The whole configuration of `closedloop serve`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The OTLP listeners and their limits (`[server]`).
    #[serde(default)]
    pub server: ServerConfig,
    /// The browser feedback endpoint `POST /v1/feedback` (`[feedback]`).
    #[serde(default)]
    pub feedback: FeedbackApiConfig,
    /// The receiver's own metrics (`[telemetry]`).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Where and how long the receiver keeps what it learns (`[store]`).
    #[serde(default)]
    pub store: StoreConfig,
    /// How feedback is matched to the response it judges (`[join]`).
    #[serde(default)]
    pub join: JoinConfig,
    /// Where failure records are sent over OTLP (`[export]`).
    #[serde(default)]
    pub export: ExportConfig,
    /// Who owns failure records and by when (`[triage]`).
    #[serde(default)]
    pub triage: TriageConfig,
    /// The daily review sample (`[review]`).
    #[serde(default)]
    pub review: ReviewConfig,
    /// Webhook notifications (`[notify]`).
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The implicit-signal detectors: rephrase, regenerate, abandon, edit (`[detectors]`).
    #[serde(default)]
    pub detectors: DetectorsConfig,
}

impl Config {
    /// Parses a configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: None,
            source: Box::new(source),
        })
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: Some(path.to_owned()),
            source: Box::new(source),
        })
    }

    /// The sections the core pipeline needs.
    pub fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            store: self.store.clone(),
            join: self.join.clone(),
            export: self.export.clone(),
            triage: self.triage.clone(),
            review: self.review.clone(),
            notify: self.notify.clone(),
            detectors: self.detectors.clone(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("invalid config{}", path.as_ref().map(|path| format!(" file {}", path.display())).unwrap_or_default())]
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The TOML error, which names the offending key and line.
        #[source]
        source: Box<toml::de::Error>,
    },
}

/// The `[server]` section: the OTLP listeners and their limits.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The OTLP/gRPC listen address (`TraceService/Export`). Loopback by default: set
    /// `0.0.0.0:4317` to accept spans from other hosts. Default `127.0.0.1:4317`.
    #[serde(default = "default_grpc_addr")]
    pub grpc_addr: SocketAddr,
    /// The HTTP listen address: OTLP/HTTP `POST /v1/traces` (protobuf and JSON), the feedback
    /// API `POST /v1/feedback` and `GET /healthz`. Default `127.0.0.1:4318`.
    #[serde(default = "default_http_addr")]
    pub http_addr: SocketAddr,
    /// The largest OTLP/gRPC message accepted, in MiB, measured after decompression. Larger
    /// messages get `RESOURCE_EXHAUSTED`. Default 4 (the OpenTelemetry Collector's default).
    #[serde(default = "default_max_grpc_message_mib")]
    pub max_grpc_message_mib: usize,
    /// The largest OTLP/HTTP body accepted, in MiB, measured both as received and after gzip
    /// decompression. Larger bodies get HTTP 413. Default 20 (the Collector's default).
    #[serde(default = "default_max_http_body_mib")]
    pub max_http_body_mib: usize,
    /// The most OTLP export requests processed at once, gRPC and HTTP together. Requests
    /// beyond it are shed at once with HTTP 503 / gRPC `UNAVAILABLE` and a retry delay, so a
    /// burst cannot pile up unbounded work. Default 256.
    #[serde(default = "default_max_in_flight_requests")]
    pub max_in_flight_requests: usize,
    /// The most memory decoding one OTLP request may take, in MiB: the scan of its bytes
    /// estimates the decoded size before decoding, and a request over it gets HTTP 413 / gRPC
    /// `RESOURCE_EXHAUSTED` (not retryable). Decoded OTLP takes two to four times its protobuf
    /// size, so the default leaves a full `max_http_body_mib` body room, while tiny messages
    /// packed to amplify (an empty attribute is 2 bytes on the wire and about 150 decoded) are
    /// refused. Default 128.
    #[serde(default = "default_max_decoded_request_mib")]
    pub max_decoded_request_mib: usize,
    /// The most messages (spans, events, links, attributes, values) one OTLP request may hold;
    /// more get HTTP 413 / gRPC `RESOURCE_EXHAUSTED`. A realistic span with 20 attributes is
    /// about 40 messages, so this is about 50000 spans. Default 2000000.
    #[serde(default = "default_max_request_elements")]
    pub max_request_elements: usize,
    /// The most memory all OTLP requests in flight may take together, in MiB: bodies as
    /// received, bodies after gzip decompression and the decoded requests. A request that
    /// would take more is shed with HTTP 503 / gRPC `UNAVAILABLE` and a retry delay. Keep it
    /// above `max_decoded_request_mib` plus twice the largest body, or the largest requests
    /// are never served. Default 512.
    #[serde(default = "default_max_decoded_in_flight_mib")]
    pub max_decoded_in_flight_mib: usize,
    /// The most messages all OTLP requests in flight may hold together; beyond it requests are
    /// shed like over `max_decoded_in_flight_mib`. Default 8000000.
    #[serde(default = "default_max_in_flight_elements")]
    pub max_in_flight_elements: usize,
    /// The retry delay suggested (`Retry-After`, gRPC `RetryInfo`) when a request is shed
    /// because too many are in flight, in seconds. Default 1.
    #[serde(default = "default_busy_retry_after_secs")]
    pub busy_retry_after_secs: u64,
    /// On SIGINT or SIGTERM the listeners stop accepting at once; requests already running get
    /// this long to finish, in seconds, before the pipeline is flushed. Default 30.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
}

const fn default_grpc_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4317)
}

const fn default_http_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4318)
}

const fn default_max_grpc_message_mib() -> usize {
    4
}

const fn default_max_http_body_mib() -> usize {
    20
}

const fn default_max_in_flight_requests() -> usize {
    256
}

const fn default_max_decoded_request_mib() -> usize {
    128
}

const fn default_max_request_elements() -> usize {
    2_000_000
}

const fn default_max_decoded_in_flight_mib() -> usize {
    512
}

const fn default_max_in_flight_elements() -> usize {
    8_000_000
}

const fn default_busy_retry_after_secs() -> u64 {
    1
}

const fn default_shutdown_grace_secs() -> u64 {
    30
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: default_grpc_addr(),
            http_addr: default_http_addr(),
            max_grpc_message_mib: default_max_grpc_message_mib(),
            max_http_body_mib: default_max_http_body_mib(),
            max_in_flight_requests: default_max_in_flight_requests(),
            max_decoded_request_mib: default_max_decoded_request_mib(),
            max_request_elements: default_max_request_elements(),
            max_decoded_in_flight_mib: default_max_decoded_in_flight_mib(),
            max_in_flight_elements: default_max_in_flight_elements(),
            busy_retry_after_secs: default_busy_retry_after_secs(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
        }
    }
}

impl ServerConfig {
    /// The decode budget of OTLP ingest.
    pub(crate) fn decode_limits(&self) -> DecodeLimits {
        const MIB: usize = 1024 * 1024;
        DecodeLimits {
            request_bytes: self.max_decoded_request_mib.saturating_mul(MIB),
            request_elements: self.max_request_elements,
            in_flight_bytes: self.max_decoded_in_flight_mib.saturating_mul(MIB),
            in_flight_elements: self.max_in_flight_elements,
            retry_after: Duration::from_secs(self.busy_retry_after_secs),
        }
    }
}

/// The `[feedback]` section: the browser feedback endpoint `POST /v1/feedback`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FeedbackApiConfig {
    /// The secret feedback tokens are signed with: the same secret the application gives
    /// `closedloop-tracing` to mint them. Prefer the `CLOSEDLOOP_FEEDBACK_TOKEN_SECRET`
    /// variable to writing it here. Without a secret the endpoint is off and answers 404.
    /// Default: none.
    #[serde(default)]
    pub token_secret: Option<String>,
    /// Browser origins allowed to call the endpoint (CORS), e.g. `https://app.example.com`.
    /// Preflight requests from other origins get no CORS headers, so browsers refuse them.
    /// Default: none (same-origin and non-browser clients only).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The largest request body accepted, in KiB. Larger bodies get HTTP 413. Default 16.
    #[serde(default = "default_max_body_kib")]
    pub max_body_kib: usize,
    /// Requests each client (peer IP address) may make per minute on average; 0 turns rate
    /// limiting off. Over the limit a client gets HTTP 429 with `Retry-After`. Behind a reverse
    /// proxy every request has the proxy's address: raise the limit or rate-limit at the proxy.
    /// Default 60.
    #[serde(default = "default_rate_limit_per_min")]
    pub rate_limit_per_min: u32,
    /// How many requests a client may make in a burst above the average rate. Default 20.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// The most clients whose rate-limit state is kept; when full, clients idle long enough to
    /// have a full bucket are forgotten, and if none are, new clients are refused (429) until
    /// some are. Default 100000.
    #[serde(default = "default_rate_limit_max_clients")]
    pub rate_limit_max_clients: usize,
    /// Whether the free-text `comment` is stored. Comments are content a user typed and may
    /// hold personal data, so they are dropped before the pipeline unless this is true.
    /// Default false.
    #[serde(default)]
    pub capture_comments: bool,
    /// The longest comment kept, in characters; longer comments are cut. Default 2000.
    #[serde(default = "default_max_comment_chars")]
    pub max_comment_chars: usize,
}

// The secret never appears in logs or `{:?}` output.
impl std::fmt::Debug for FeedbackApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackApiConfig")
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("allowed_origins", &self.allowed_origins)
            .field("max_body_kib", &self.max_body_kib)
            .field("rate_limit_per_min", &self.rate_limit_per_min)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("rate_limit_max_clients", &self.rate_limit_max_clients)
            .field("capture_comments", &self.capture_comments)
            .field("max_comment_chars", &self.max_comment_chars)
            .finish()
    }
}

const fn default_max_body_kib() -> usize {
    16
}

const fn default_rate_limit_per_min() -> u32 {
    60
}

const fn default_rate_limit_burst() -> u32 {
    20
}

const fn default_rate_limit_max_clients() -> usize {
    100_000
}

const fn default_max_comment_chars() -> usize {
    2_000
}

impl Default for FeedbackApiConfig {
    fn default() -> Self {
        Self {
            token_secret: None,
            allowed_origins: Vec::new(),
            max_body_kib: default_max_body_kib(),
            rate_limit_per_min: default_rate_limit_per_min(),
            rate_limit_burst: default_rate_limit_burst(),
            rate_limit_max_clients: default_rate_limit_max_clients(),
            capture_comments: false,
            max_comment_chars: default_max_comment_chars(),
        }
    }
}

/// The `[telemetry]` section: the receiver's own metrics, exported over OTLP/gRPC.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/gRPC endpoint the receiver's metrics go to, e.g. `http://127.0.0.1:4317` of a
    /// Collector. Without one, no metrics are recorded or sent. Default: none.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// How often metrics are exported, in seconds. Default 60.
    #[serde(default = "default_metrics_interval_secs")]
    pub metrics_interval_secs: u64,
    /// The timeout of one metrics export, in seconds. Default 10.
    #[serde(default = "default_metrics_timeout_secs")]
    pub metrics_timeout_secs: u64,
}

const fn default_metrics_interval_secs() -> u64 {
    60
}

const fn default_metrics_timeout_secs() -> u64 {
    10
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics_endpoint: None,
            metrics_interval_secs: default_metrics_interval_secs(),
            metrics_timeout_secs: default_metrics_timeout_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        let defaults = Config::default();
        assert_eq!(defaults.server.grpc_addr.to_string(), "127.0.0.1:4317");
        assert_eq!(defaults.server.http_addr.to_string(), "127.0.0.1:4318");
        assert!(defaults.feedback.allowed_origins.is_empty());
        assert!(!defaults.feedback.capture_comments);
        assert!(defaults.telemetry.metrics_endpoint.is_none());
    }

    #[test]
    fn empty_sections_give_the_defaults() {
        let text = "[server]\n[feedback]\n[telemetry]\n[store]\n[join]\n[export]\n\
            [detectors]\n[detectors.rephrase]\n[detectors.regenerate]\n[detectors.abandon]\n\
            [detectors.edit]\n";
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let error = Config::from_toml("[server]\ngrpc_adr = \"127.0.0.1:1\"\n").unwrap_err();
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.contains("grpc_adr"), "{source}");
        assert!(Config::from_toml("[nope]\n").is_err());
    }

    #[test]
    fn secret_is_redacted_in_debug_output() {
        let config = Config::from_toml("[feedback]\ntoken_secret = \"hunter2\"\n").unwrap();
        assert_eq!(config.feedback.token_secret.as_deref(), Some("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
