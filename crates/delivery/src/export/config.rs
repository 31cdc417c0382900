use std::collections::BTreeMap;

use serde::Deserialize;

use closedloop_engine::secret::Secret;

use super::langfuse::LangfuseConfig;
use super::phoenix::PhoenixConfig;

/// The `[export]` section: where failure-record spans are sent.
///
/// The standard OpenTelemetry exporter variables are read too (unless `use_env` is false) and
/// rank above the file, below the command-line flags (see the `config` module for the one
/// precedence rule): `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is, like `traces_endpoint`)
/// before `OTEL_EXPORTER_OTLP_ENDPOINT` (HTTP appends `/v1/traces`), and likewise the
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
    /// The full URL of the traces endpoint, used as is (no `/v1/traces` appended), like
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. When set, `endpoint` is not used. Default: none.
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`. Default `http/protobuf`, as in the OpenTelemetry spec.
    #[serde(default)]
    pub protocol: Option<ExportProtocol>,
    /// Extra request headers (gRPC metadata), e.g. an `authorization` header. The values are
    /// secrets: `closedloop check-config` and logs show them redacted. Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
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
    /// The resource attributes of the exported record spans, e.g. `service.name` or
    /// `openinference.project.name` (Phoenix's project of a trace it has not seen yet; a
    /// record joins the project its trace is already in). `service.name` defaults to
    /// `closedloop` when not given. Default `{ "service.name" = "closedloop" }`.
    #[serde(default = "default_resource")]
    pub resource: BTreeMap<String, String>,
    /// Phoenix span annotations (`[export.phoenix]`), beside or instead of OTLP. Default off.
    #[serde(default)]
    pub phoenix: Option<PhoenixConfig>,
    /// Langfuse scores (`[export.langfuse]`), beside or instead of OTLP. Default off.
    #[serde(default)]
    pub langfuse: Option<LangfuseConfig>,
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

// Not a `const fn`: a map with an entry cannot be built in a constant.
fn default_resource() -> BTreeMap<String, String> {
    BTreeMap::from([("service.name".to_owned(), super::SERVICE_NAME.to_owned())])
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            traces_endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            timeout_millis: None,
            compression: None,
            max_batch_spans: default_max_batch_spans(),
            initial_backoff_millis: default_initial_backoff_millis(),
            max_backoff_secs: default_max_backoff_secs(),
            shutdown_timeout_millis: default_shutdown_timeout_millis(),
            use_env: default_use_env(),
            resource: default_resource(),
            phoenix: None,
            langfuse: None,
        }
    }
}

/// The default request timeout, in milliseconds (the OpenTelemetry default).
const DEFAULT_TIMEOUT_MILLIS: u64 = 10_000;

/// The HTTP path of the traces endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// An export target, from the effective `[export]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// For HTTP the full URL of the traces endpoint; for gRPC the server URI.
    pub endpoint: String,
    /// The transport.
    pub protocol: ExportProtocol,
    /// Headers sent with every request.
    pub headers: Vec<(String, Secret)>,
    /// How long one request may take.
    pub timeout: std::time::Duration,
    /// Whether request bodies are gzip-compressed.
    pub gzip: bool,
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
    /// A header whose name or value cannot be sent (HTTP header or gRPC metadata rules).
    #[error("export header `{0}` has an invalid name or value")]
    Header(String),
    /// A sink that needs keys has none (in the file or its variables).
    #[error("{0} needs its public and secret keys")]
    MissingKey(&'static str),
}

impl ExportProtocol {
    /// The name used in the file, the flag and `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportProtocol::Grpc => "grpc",
            ExportProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

impl std::str::FromStr for ExportProtocol {
    type Err = ExportConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "grpc" => Ok(ExportProtocol::Grpc),
            "http/protobuf" => Ok(ExportProtocol::HttpProtobuf),
            other => Err(ExportConfigError::Protocol(other.to_owned())),
        }
    }
}

impl std::str::FromStr for ExportCompression {
    type Err = ExportConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "gzip" => Ok(ExportCompression::Gzip),
            "none" => Ok(ExportCompression::None),
            other => Err(ExportConfigError::Compression(other.to_owned())),
        }
    }
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
fn parse_headers(text: &str) -> Vec<(String, Secret)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| {
                (
                    key.to_ascii_lowercase(),
                    percent_decode(value.trim()).into(),
                )
            })
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

/// An `http://` URL with a host, as every sink needs.
pub(crate) fn is_http_url(url: &str) -> bool {
    url.starts_with("http://")
        && url
            .parse::<http::Uri>()
            .is_ok_and(|uri| uri.host().is_some_and(|host| !host.is_empty()))
}

/// The export settings given on the command line (or their `CLOSEDLOOP_*` variables).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportFlags<'a> {
    /// `--export-endpoint`: means what `export.endpoint` means in the file.
    pub endpoint: Option<&'a str>,
    /// `--export-protocol`.
    pub protocol: Option<ExportProtocol>,
}

impl ExportConfig {
    /// Lays the `OTEL_EXPORTER_OTLP_*` variables (read through `env`, unless `use_env` is
    /// false) and then `flags` over this section, as read from the file: each setting ends up
    /// with the first value of flag, variable, file. Afterwards the section is the effective
    /// one and [`ExportConfig::resolve`] reads nothing else.
    ///
    /// `Err` names the variable whose value cannot be used.
    pub fn layer(
        &mut self,
        flags: ExportFlags<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), (String, ExportConfigError)> {
        // The sinks' keys are closedloop's own variables, read whatever `use_env` says.
        let env_secret = env;
        let env = |name: &str| {
            if self.use_env {
                env(name)
                    .filter(|value| !value.trim().is_empty())
                    .map(|value| (name.to_owned(), value))
            } else {
                None
            }
        };
        let signal_or_generic = |suffix: &str| {
            env(&format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"))
                .or_else(|| env(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
        };
        fn parse<T: std::str::FromStr<Err = ExportConfigError>>(
            variable: Option<(String, String)>,
        ) -> Result<Option<T>, (String, ExportConfigError)> {
            variable
                .map(|(name, value)| value.parse().map_err(|error| (name, error)))
                .transpose()
        }

        let env_protocol = parse::<ExportProtocol>(signal_or_generic("PROTOCOL"))?;
        self.protocol = flags.protocol.or(env_protocol).or(self.protocol);

        // One setting with two keys: `endpoint` (HTTP appends `/v1/traces` unless the URL has
        // a path) and `traces_endpoint` (as is). The source that wins sets one and clears the
        // other. The generic variable always gets the signal path over HTTP, so it becomes a
        // `traces_endpoint` once the protocol is known.
        if let Some(url) = flags.endpoint {
            self.endpoint = Some(url.trim().to_owned());
            self.traces_endpoint = None;
        } else if let Some((_, url)) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.traces_endpoint = Some(url.trim().to_owned());
            self.endpoint = None;
        } else if let Some((_, url)) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.traces_endpoint = Some(
                match self.protocol.unwrap_or(ExportProtocol::HttpProtobuf) {
                    ExportProtocol::Grpc => url.trim().to_owned(),
                    ExportProtocol::HttpProtobuf => http_traces_url(url.trim(), true),
                },
            );
            self.endpoint = None;
        }

        // Header by header: the generic variable over the file, the signal one over both.
        let mut headers: BTreeMap<String, Secret> = std::mem::take(&mut self.headers)
            .into_iter()
            .map(|(key, value)| (key.to_ascii_lowercase(), value))
            .collect();
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some((_, text)) = env(name) {
                headers.extend(parse_headers(&text));
            }
        }
        self.headers = headers;

        let env_timeout = signal_or_generic("TIMEOUT")
            .map(|(name, text)| {
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| (name, ExportConfigError::Timeout(text)))
            })
            .transpose()?;
        self.timeout_millis = env_timeout.or(self.timeout_millis);
        let env_compression = parse::<ExportCompression>(signal_or_generic("COMPRESSION"))?;
        self.compression = env_compression.or(self.compression);
        if let Some(phoenix) = &mut self.phoenix {
            phoenix.layer(env_secret);
        }
        if let Some(langfuse) = &mut self.langfuse {
            langfuse.layer(env_secret);
        }
        Ok(())
    }

    /// The sinks this section turns on, by the name their outbox rows carry: `otlp` (an
    /// endpoint is set), `phoenix`, `langfuse`. Empty: records are stored, not exported.
    pub fn sink_names(&self) -> Result<Vec<&'static str>, ExportConfigError> {
        let mut names = Vec::new();
        if self.resolve()?.is_some() {
            names.push(super::OTLP_SINK);
        }
        if self.phoenix.is_some() {
            names.push(super::PHOENIX_SINK);
        }
        if self.langfuse.is_some() {
            names.push(super::LANGFUSE_SINK);
        }
        Ok(names)
    }

    /// Checks the annotation sinks' settings (URLs, Langfuse's keys); `Err` names the setting.
    pub fn check_sinks(&self) -> Result<(), (&'static str, ExportConfigError)> {
        if let Some(phoenix) = &self.phoenix {
            if !is_http_url(&phoenix.endpoint) {
                let error = ExportConfigError::Endpoint(phoenix.endpoint.clone());
                return Err(("export.phoenix.endpoint", error));
            }
        }
        if let Some(langfuse) = &self.langfuse {
            if !is_http_url(&langfuse.endpoint) {
                let error = ExportConfigError::Endpoint(langfuse.endpoint.clone());
                return Err(("export.langfuse.endpoint", error));
            }
            if langfuse.public_key.is_none() || langfuse.secret_key.is_none() {
                let key = if langfuse.public_key.is_none() {
                    "export.langfuse.public_key"
                } else {
                    "export.langfuse.secret_key"
                };
                return Err((key, ExportConfigError::MissingKey("export.langfuse")));
            }
        }
        Ok(())
    }

    /// Whether any sink is on, so failure-record revisions go to the outbox.
    pub fn enabled(&self) -> Result<bool, ExportConfigError> {
        Ok(!self.sink_names()?.is_empty())
    }

    /// The export target this section describes. `Ok(None)`: no endpoint, export disabled.
    /// Reads no environment: [`ExportConfig::layer`] has put it in already.
    pub fn resolve(&self) -> Result<Option<Resolved>, ExportConfigError> {
        let protocol = self.protocol.unwrap_or(ExportProtocol::HttpProtobuf);
        let (url, as_is) = match (&self.traces_endpoint, &self.endpoint) {
            (Some(url), _) => (url.trim(), true),
            (None, Some(url)) => (url.trim(), false),
            (None, None) => return Ok(None),
        };
        if !is_http_url(url) {
            return Err(ExportConfigError::Endpoint(url.to_owned()));
        }
        let endpoint = match protocol {
            ExportProtocol::HttpProtobuf if !as_is => http_traces_url(url, false),
            _ => url.to_owned(),
        };
        let headers = self
            .headers
            .iter()
            .map(|(key, value)| {
                let key = key.to_ascii_lowercase();
                let valid = http::HeaderName::from_bytes(key.as_bytes()).is_ok()
                    && http::HeaderValue::from_str(value.expose()).is_ok();
                valid
                    .then(|| (key.clone(), value.clone()))
                    .ok_or(ExportConfigError::Header(key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout_millis = self.timeout_millis.unwrap_or(DEFAULT_TIMEOUT_MILLIS);
        let gzip = self.compression.unwrap_or(ExportCompression::Gzip) == ExportCompression::Gzip;
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

    /// The target of `config` (the file) under `vars` and `flags`.
    fn target(
        mut config: ExportConfig,
        flags: ExportFlags<'_>,
        vars: &[(&str, &str)],
    ) -> Option<Resolved> {
        config.layer(flags, &env(vars)).unwrap();
        config.resolve().unwrap()
    }

    fn file_endpoint(url: &str) -> ExportConfig {
        ExportConfig {
            endpoint: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn no_endpoint_disables_export() {
        assert_eq!(
            target(ExportConfig::default(), ExportFlags::default(), &[]),
            None
        );
    }

    #[test]
    fn file_endpoint_http_appends_path_once() {
        let resolved = target(
            file_endpoint("http://127.0.0.1:4318"),
            ExportFlags::default(),
            &[],
        )
        .unwrap();
        assert_eq!(resolved.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(resolved.protocol, ExportProtocol::HttpProtobuf);
        assert_eq!(resolved.timeout, std::time::Duration::from_secs(10));
        assert!(resolved.gzip);
        let resolved = target(
            file_endpoint("http://collector/custom/traces"),
            ExportFlags::default(),
            &[],
        )
        .unwrap();
        assert_eq!(resolved.endpoint, "http://collector/custom/traces");
        let config = ExportConfig {
            traces_endpoint: Some("http://collector:4318".into()),
            ..file_endpoint("http://ignored:4318")
        };
        let resolved = config.resolve().unwrap().unwrap();
        assert_eq!(resolved.endpoint, "http://collector:4318", "used as is");
    }

    #[test]
    fn environment_overrides_file_and_signal_overrides_generic() {
        let config = ExportConfig {
            headers: [("Authorization".to_owned(), "file".into())].into(),
            ..file_endpoint("http://file:4318")
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
        let resolved = target(config.clone(), ExportFlags::default(), &vars).unwrap();
        assert_eq!(resolved.endpoint, "http://generic:4318/v1/traces");
        assert_eq!(
            resolved.headers,
            vec![
                ("authorization".to_owned(), "Bearer x".into()),
                ("team".to_owned(), "b".into())
            ]
        );
        assert_eq!(resolved.timeout, std::time::Duration::from_millis(2500));
        assert!(!resolved.gzip);

        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ];
        let resolved = target(config, ExportFlags::default(), &vars).unwrap();
        assert_eq!(resolved.endpoint, "http://traces:4317");
        assert_eq!(resolved.protocol, ExportProtocol::Grpc);
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let file = ExportConfig {
            protocol: Some(ExportProtocol::HttpProtobuf),
            ..file_endpoint("http://file:4318")
        };
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ];
        let flags = ExportFlags {
            endpoint: Some("http://flag:4317"),
            protocol: Some(ExportProtocol::Grpc),
        };
        // Endpoint and protocol: flag over variable over file, each on its own.
        let resolved = target(file.clone(), flags, &vars).unwrap();
        assert_eq!(resolved.endpoint, "http://flag:4317");
        assert_eq!(resolved.protocol, ExportProtocol::Grpc);
        let endpoint_only = ExportFlags {
            protocol: None,
            ..flags
        };
        let resolved = target(file.clone(), endpoint_only, &vars).unwrap();
        assert_eq!(resolved.endpoint, "http://flag:4317/v1/traces");
        assert_eq!(resolved.protocol, ExportProtocol::HttpProtobuf);
        let protocol_only = ExportFlags {
            endpoint: None,
            ..flags
        };
        let resolved = target(file.clone(), protocol_only, &vars).unwrap();
        assert_eq!(
            resolved.endpoint, "http://env:4318",
            "the generic variable gets no signal path over gRPC"
        );
        assert_eq!(resolved.protocol, ExportProtocol::Grpc);
        let resolved = target(file.clone(), ExportFlags::default(), &vars).unwrap();
        assert_eq!(resolved.endpoint, "http://env:4318/v1/traces");
        let resolved = target(file, ExportFlags::default(), &[]).unwrap();
        assert_eq!(resolved.endpoint, "http://file:4318/v1/traces");
    }

    #[test]
    fn a_flag_endpoint_replaces_a_traces_endpoint_from_the_file() {
        let file = ExportConfig {
            traces_endpoint: Some("http://file:4318/v1/traces".into()),
            ..Default::default()
        };
        let flags = ExportFlags {
            endpoint: Some("http://flag:4318"),
            protocol: None,
        };
        let resolved = target(file, flags, &[]).unwrap();
        assert_eq!(resolved.endpoint, "http://flag:4318/v1/traces");
    }

    #[test]
    fn environment_ignored_when_disabled() {
        let config = ExportConfig {
            use_env: false,
            ..Default::default()
        };
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318")];
        assert_eq!(target(config, ExportFlags::default(), &vars), None);
    }

    #[test]
    fn sinks_are_named_and_their_keys_come_from_the_environment_redacted() {
        let mut config: ExportConfig = toml::from_str(
            "[phoenix]\nendpoint = \"http://phoenix:6006\"\napi_key = \"file-key\"\n\
             [langfuse]\nendpoint = \"http://langfuse:3000\"\npublic_key = \"pk-file\"",
        )
        .unwrap();
        assert_eq!(config.sink_names().unwrap(), ["phoenix", "langfuse"]);
        let vars = [
            ("CLOSEDLOOP_PHOENIX_API_KEY", "env-key"),
            ("CLOSEDLOOP_LANGFUSE_SECRET_KEY", "sk-env"),
        ];
        config.layer(ExportFlags::default(), &env(&vars)).unwrap();
        let phoenix = config.phoenix.as_ref().unwrap();
        assert_eq!(phoenix.api_key.as_deref(), Some("env-key"));
        let langfuse = config.langfuse.as_ref().unwrap();
        assert_eq!(langfuse.public_key.as_deref(), Some("pk-file"));
        assert_eq!(langfuse.secret_key.as_deref(), Some("sk-env"));
        let printed = format!("{config:?}");
        for secret in ["env-key", "pk-file", "sk-env"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        config.endpoint = Some("http://collector:4318".into());
        assert_eq!(
            config.sink_names().unwrap(),
            ["otlp", "phoenix", "langfuse"]
        );
        // Langfuse without its secret key cannot start.
        config.langfuse.as_mut().unwrap().secret_key = None;
        assert!(matches!(
            super::super::sink::Sink::all(&config),
            Err(ExportConfigError::MissingKey("export.langfuse"))
        ));
    }

    #[test]
    fn rejects_bad_values() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ];
        let error = ExportConfig::default()
            .layer(ExportFlags::default(), &env(&vars))
            .unwrap_err();
        assert_eq!(error.0, "OTEL_EXPORTER_OTLP_PROTOCOL");
        assert!(matches!(error.1, ExportConfigError::Protocol(_)));
        for url in ["https://secure:4318", "not a url", "http://"] {
            assert!(
                matches!(
                    file_endpoint(url).resolve(),
                    Err(ExportConfigError::Endpoint(_))
                ),
                "{url}"
            );
        }
        let config = ExportConfig {
            headers: [("authorization".to_owned(), Secret::from("Bearer a\nb"))].into(),
            ..file_endpoint("http://collector:4318")
        };
        assert!(matches!(
            config.resolve(),
            Err(ExportConfigError::Header(_))
        ));
    }
}
