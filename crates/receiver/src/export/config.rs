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

/// The default request timeout, in milliseconds (the OpenTelemetry default).
const DEFAULT_TIMEOUT_MILLIS: u64 = 10_000;

/// The HTTP path of the traces endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// An export target with file and environment merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// For HTTP the full URL of the traces endpoint; for gRPC the server URI.
    pub(crate) endpoint: String,
    pub(crate) protocol: ExportProtocol,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: std::time::Duration,
    pub(crate) gzip: bool,
}

/// Why the export settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportConfigError {
    /// The endpoint is not an `http://` URL.
    #[error("export endpoint `{0}` is not an http:// url (tls is not supported by this build)")]
    Endpoint(String),
    /// A protocol this receiver cannot export with.
    #[error("unsupported export protocol `{0}` (use grpc or http/protobuf)")]
    Protocol(String),
    /// A compression this receiver cannot export with.
    #[error("unsupported export compression `{0}` (use gzip or none)")]
    Compression(String),
    /// A timeout that is not a number of milliseconds.
    #[error("invalid export timeout `{0}` (milliseconds expected)")]
    Timeout(String),
}

/// Percent-decodes a header value of `OTEL_EXPORTER_OTLP_HEADERS`.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or_default();
            if let Ok(byte) = u8::from_str_radix(digits, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `key1=value1,key2=value2` (W3C baggage-like, values percent-encoded).
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_ascii_lowercase(), percent_decode(value.trim())))
        })
        .collect()
}

/// Appends `/v1/traces` unless the URL already has a path beyond `/`.
fn http_traces_url(endpoint: &str, always_append: bool) -> String {
    let after_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let has_path = after_scheme
        .find('/')
        .is_some_and(|slash| !after_scheme[slash..].trim_end_matches('/').is_empty());
    if has_path && !always_append {
        endpoint.to_owned()
    } else {
        format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/'))
    }
}

impl ExportConfig {
    /// Merges the file with the `OTEL_EXPORTER_OTLP_*` variables read through `env`.
    /// `Ok(None)`: no endpoint anywhere, export disabled.
    pub(crate) fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Resolved>, ExportConfigError> {
        let env = |name: &str| {
            if self.use_env {
                env(name).filter(|value| !value.trim().is_empty())
            } else {
                None
            }
        };
        let signal_or_generic = |suffix: &str| {
            env(&format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"))
                .or_else(|| env(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
        };

        let protocol = match signal_or_generic("PROTOCOL") {
            Some(text) => match text.trim() {
                "grpc" => ExportProtocol::Grpc,
                "http/protobuf" => ExportProtocol::HttpProtobuf,
                other => return Err(ExportConfigError::Protocol(other.to_owned())),
            },
            None => self.protocol.unwrap_or(ExportProtocol::HttpProtobuf),
        };

        // Signal-specific endpoint: used as is. Generic endpoint: HTTP appends the signal
        // path. The file's endpoint: HTTP appends it unless the URL has a path already.
        let endpoint = if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            url.trim().to_owned()
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            match protocol {
                ExportProtocol::Grpc => url.trim().to_owned(),
                ExportProtocol::HttpProtobuf => http_traces_url(url.trim(), true),
            }
        } else if let Some(url) = &self.endpoint {
            match protocol {
                ExportProtocol::Grpc => url.trim().to_owned(),
                ExportProtocol::HttpProtobuf => http_traces_url(url.trim(), false),
            }
        } else {
            return Ok(None);
        };
        if !endpoint.starts_with("http://") {
            return Err(ExportConfigError::Endpoint(endpoint));
        }

        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(key, value)| (key.to_ascii_lowercase(), value.clone()))
            .collect();
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            for (key, value) in env(name).as_deref().map(parse_headers).unwrap_or_default() {
                headers.retain(|(existing, _)| *existing != key);
                headers.push((key, value));
            }
        }

        let timeout_millis = match signal_or_generic("TIMEOUT") {
            Some(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| ExportConfigError::Timeout(text))?,
            None => self.timeout_millis.unwrap_or(DEFAULT_TIMEOUT_MILLIS),
        };
        let gzip = match signal_or_generic("COMPRESSION") {
            Some(text) => match text.trim() {
                "gzip" => true,
                "none" => false,
                other => return Err(ExportConfigError::Compression(other.to_owned())),
            },
            None => self.compression.unwrap_or(ExportCompression::Gzip) == ExportCompression::Gzip,
        };
        Ok(Some(Resolved {
            endpoint,
            protocol,
            headers,
            timeout: std::time::Duration::from_millis(timeout_millis.max(1)),
            gzip,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn no_endpoint_disables_export() {
        assert_eq!(ExportConfig::default().resolve(env(&[])).unwrap(), None);
    }

    #[test]
    fn file_endpoint_http_appends_path_once() {
        let config = ExportConfig {
            endpoint: Some("http://127.0.0.1:4318".into()),
            ..Default::default()
        };
        let resolved = config.resolve(env(&[])).unwrap().unwrap();
        assert_eq!(resolved.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(resolved.protocol, ExportProtocol::HttpProtobuf);
        assert_eq!(resolved.timeout, std::time::Duration::from_secs(10));
        assert!(resolved.gzip);
        let config = ExportConfig {
            endpoint: Some("http://collector/custom/traces".into()),
            ..Default::default()
        };
        let resolved = config.resolve(env(&[])).unwrap().unwrap();
        assert_eq!(resolved.endpoint, "http://collector/custom/traces");
    }

    #[test]
    fn environment_overrides_file_and_signal_overrides_generic() {
        let config = ExportConfig {
            endpoint: Some("http://file:4318".into()),
            headers: [("Authorization".to_owned(), "file".to_owned())].into(),
            ..Default::default()
        };
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20x,team=a",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "team=b"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ];
        let resolved = config.resolve(env(&vars)).unwrap().unwrap();
        assert_eq!(resolved.endpoint, "http://generic:4318/v1/traces");
        assert_eq!(
            resolved.headers,
            vec![
                ("authorization".to_owned(), "Bearer x".to_owned()),
                ("team".to_owned(), "b".to_owned())
            ]
        );
        assert_eq!(resolved.timeout, std::time::Duration::from_millis(2500));
        assert!(!resolved.gzip);

        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ];
        let resolved = config.resolve(env(&vars)).unwrap().unwrap();
        assert_eq!(resolved.endpoint, "http://traces:4317");
        assert_eq!(resolved.protocol, ExportProtocol::Grpc);
    }

    #[test]
    fn environment_ignored_when_disabled() {
        let config = ExportConfig {
            use_env: false,
            ..Default::default()
        };
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318")];
        assert_eq!(config.resolve(env(&vars)).unwrap(), None);
    }

    #[test]
    fn rejects_bad_values() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ];
        assert!(matches!(
            ExportConfig::default().resolve(env(&vars)),
            Err(ExportConfigError::Protocol(_))
        ));
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "https://secure:4318")];
        assert!(matches!(
            ExportConfig::default().resolve(env(&vars)),
            Err(ExportConfigError::Endpoint(_))
        ));
    }
}
