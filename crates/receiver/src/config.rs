//! The `closedloop` configuration file.
//!
//! A TOML file with one table per component. Every field is optional; an empty file gives the
//! defaults documented on each field. Unknown keys are errors, so a typo never goes unnoticed.
//! `closedloop.example.toml` at the repository root lists every field with its default.
//!
//! # Precedence
//!
//! One rule for every setting that has more than one source, highest first:
//!
//! 1. a command-line flag (`closedloop serve --help` lists them), or the `CLOSEDLOOP_*`
//!    variable bound to it, which stands for the flag when the flag is absent
//!    (`--export-endpoint` / `CLOSEDLOOP_EXPORT_ENDPOINT`);
//! 2. the other environment variables: the OpenTelemetry exporter variables
//!    (`OTEL_EXPORTER_OTLP_ENDPOINT`, `_PROTOCOL`, `_HEADERS`, ..., see [`ExportConfig`]) and
//!    the secrets (`CLOSEDLOOP_FEEDBACK_TOKEN_SECRET`);
//! 3. the file;
//! 4. the defaults.
//!
//! [`Config::layer`] applies it, once, to the file's configuration; the result is the
//! effective configuration, which `closedloop check-config` prints (secrets redacted) and
//! `closedloop serve` runs with. [`Config::validate`] then checks what the types cannot say
//! (ranges, URLs, origins); both commands run it before anything starts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::detectors::DetectorsConfig;
use crate::direct::DirectSettings;
use crate::edge::IngestToken;
use crate::export::{ExportConfig, ExportConfigError, ExportFlags, ExportProtocol};
use crate::feedback_api::FeedbackConfigError;
use crate::join::JoinConfig;
use crate::otlp::budget::DecodeLimits;
use crate::pipeline::PipelineConfig;
use crate::secret::Secret;
use crate::spans::SpansConfig;
use crate::store::StoreConfig;
use closedloop_commands::review::ReviewConfig;
use closedloop_console::{UiConfig, UiConfigError, UI_SESSION_SECRET_ENV};
use closedloop_engine::monitors::{MonitorSpec, MonitoringConfig};
use closedloop_engine::triage::{NotifyConfig, TriageConfig};

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
    /// How spans of other instrumentations are read (`[spans]`).
    #[serde(default)]
    pub spans: SpansConfig,
    /// The web console (`[ui]`).
    #[serde(default)]
    pub ui: UiConfig,
    /// How the monitors decide (`[monitoring]`).
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// The monitors (`[[monitors]]`); without any, the defaults: the failure rate per template
    /// version, model and data source, each negative signal's rate, the query-mix drift.
    #[serde(default)]
    pub monitors: Vec<MonitorSpec>,
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
            spans: self.spans.clone(),
            monitoring: self.monitoring.clone(),
            monitors: self.monitors.clone(),
            capture_comments_max_chars: self
                .feedback
                .capture_comments
                .then_some(self.feedback.max_comment_chars),
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
    /// An environment variable's value cannot be used.
    #[error("invalid environment variable {variable}")]
    Environment {
        /// The variable.
        variable: String,
        /// What is wrong with it.
        #[source]
        source: EnvironmentError,
    },
    /// The `[ui]` section cannot be used, or the console would be open beyond loopback.
    #[error("invalid [ui] section: {0}")]
    Ui(#[source] UiConfigError),
    /// The `[monitoring]` section or a `[[monitors]]` entry cannot be used.
    #[error("invalid [monitoring] or [[monitors]]: {0}")]
    Monitoring(String),
    /// A setting's value cannot be used ([`Config::validate`]).
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// The setting, as written in the file (`review.implicit_negative_share`).
        key: String,
        /// What is wrong with it.
        reason: InvalidSetting,
    },
}

/// What is wrong with an environment variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvironmentError {
    /// The value is not valid UTF-8.
    #[error("the value is not valid utf-8")]
    NotUnicode,
    /// An `OTEL_EXPORTER_OTLP_*` value the exporter cannot use.
    #[error(transparent)]
    Export(#[from] ExportConfigError),
    /// A `CLOSEDLOOP_INGEST_TOKEN` that cannot be a bearer token.
    #[error(transparent)]
    IngestToken(#[from] crate::edge::IngestTokenError),
}

/// What is wrong with a setting (see [`ConfigError::Invalid`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSetting {
    /// A share, threshold or fraction outside 0..=1.
    #[error("{0} is not between 0 and 1")]
    NotAFraction(f64),
    /// Zero where only a positive value works.
    #[error("0 is not allowed, the value must be positive")]
    Zero,
    /// Empty where a value is needed.
    #[error("the value is empty")]
    Empty,
    /// Smaller than a setting it must not be below.
    #[error("{value} is below {other} ({other_value})")]
    Below {
        /// The value.
        value: f64,
        /// The other setting.
        other: &'static str,
        /// The other setting's value.
        other_value: f64,
    },
    /// The same listen address as another listener.
    #[error("{0} is also the address of another listener")]
    SameAddress(SocketAddr),
    /// Not an `http://` URL with a host. (The value is not repeated: it may be a secret.)
    #[error("not an http:// url with a host")]
    NotHttpUrl,
    /// Not an `http://` or `https://` URL with a host. (The value is not repeated: webhook
    /// URLs are secrets.)
    #[error("not an http:// or https:// url with a host")]
    NotWebUrl,
    /// The export target cannot be used.
    #[error(transparent)]
    Export(ExportConfigError),
    /// The feedback endpoint cannot be built.
    #[error(transparent)]
    Feedback(FeedbackConfigError),
    /// A directory that holds no `model.safetensors`.
    #[error(
        "{0} holds no model.safetensors (scripts/embedding-model.sh installs all-MiniLM-L6-v2)"
    )]
    NotAModelDir(PathBuf),
    /// A name that cannot name semantic fingerprints.
    #[error(transparent)]
    ModelName(closedloop_tracing::SemanticFingerprintError),
}

/// The environment variable holding the feedback token secret (never a flag: flags show up in
/// process listings).
pub const FEEDBACK_TOKEN_SECRET_ENV: &str = "CLOSEDLOOP_FEEDBACK_TOKEN_SECRET";

/// The environment variable holding the OTLP ingest token (`server.ingest_token`); never a
/// flag, for the same reason.
pub const INGEST_TOKEN_ENV: &str = "CLOSEDLOOP_INGEST_TOKEN";

/// The environment variable holding the PostgreSQL connection string (`store.url`), which
/// may hold a password; never a flag, for the same reason.
pub const STORE_URL_ENV: &str = "CLOSEDLOOP_STORE_URL";

/// The settings the command line gives, laid over the environment and the file by
/// [`Config::layer`]: each is `None` when its flag (and the `CLOSEDLOOP_*` variable bound to
/// it) is absent, which leaves the setting to the environment, the file and the defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flags {
    /// The OTLP/gRPC listen address (`server.grpc_addr`).
    pub grpc_addr: Option<SocketAddr>,
    /// The HTTP listen address: OTLP/HTTP, feedback API, health (`server.http_addr`).
    pub http_addr: Option<SocketAddr>,
    /// The SQLite store file (`store.path`).
    pub store_path: Option<PathBuf>,
    /// The OTLP endpoint failure records are exported to (`export.endpoint`).
    pub export_endpoint: Option<String>,
    /// The OTLP transport failure records are exported with (`export.protocol`).
    pub export_protocol: Option<ExportProtocol>,
    /// The OTLP/gRPC endpoint the receiver's own metrics go to (`telemetry.metrics_endpoint`).
    pub metrics_endpoint: Option<String>,
}

impl Config {
    /// Lays the environment (read through `env`) and then the command-line `flags` over this
    /// configuration (the file's, or the defaults), by the one precedence rule of this module:
    /// each setting takes the first value of flag, environment, file. The result is the
    /// effective configuration: nothing reads the environment after this.
    pub fn layer(
        &mut self,
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        // Settings with a flag only (its `CLOSEDLOOP_*` variable stands for the flag).
        fn flag<T: Clone>(setting: &mut T, flag: Option<&T>) {
            if let Some(value) = flag {
                setting.clone_from(value);
            }
        }
        flag(&mut self.server.grpc_addr, flags.grpc_addr.as_ref());
        flag(&mut self.server.http_addr, flags.http_addr.as_ref());
        flag(&mut self.store.path, flags.store_path.as_ref());
        if let Some(endpoint) = &flags.metrics_endpoint {
            self.telemetry.metrics_endpoint = Some(endpoint.clone());
        }
        // Settings with a variable only: the secrets.
        if let Some(secret) = env(FEEDBACK_TOKEN_SECRET_ENV) {
            self.feedback.token_secret = Some(secret.into());
        }
        if let Some(secret) = env(UI_SESSION_SECRET_ENV) {
            self.ui.session_secret = Some(secret.into());
        }
        if let Some(token) = env(INGEST_TOKEN_ENV) {
            let token = IngestToken::new(token).map_err(|error| ConfigError::Environment {
                variable: INGEST_TOKEN_ENV.to_owned(),
                source: error.into(),
            })?;
            self.server.ingest_token = Some(token);
        }
        if let Some(url) = env(STORE_URL_ENV) {
            self.store.url = Some(closedloop_store::StoreUrl::new(url));
        }
        // Settings with a flag, variables and the file.
        let export_flags = ExportFlags {
            endpoint: flags.export_endpoint.as_deref(),
            protocol: flags.export_protocol,
        };
        self.export
            .layer(export_flags, env)
            .map_err(|(variable, error)| ConfigError::Environment {
                variable,
                source: error.into(),
            })
    }

    /// Checks what the types cannot: ranges (shares and thresholds within 0..=1, positive
    /// sizes and intervals), URLs, origins, and everything else `closedloop serve` would
    /// refuse at start. `closedloop serve` and `closedloop check-config` both run it on the
    /// effective configuration before anything starts; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_server(&self.server)?;
        validate_feedback(&self.feedback)?;
        validate_telemetry(&self.telemetry)?;
        validate_store(&self.store)?;
        validate_join(&self.join)?;
        validate_export(&self.export)?;
        validate_triage(&self.triage)?;
        validate_review(&self.review)?;
        validate_notify(&self.notify)?;
        validate_detectors(&self.detectors)?;
        self.monitoring
            .validate()
            .map_err(ConfigError::Monitoring)?;
        for monitor in &self.monitors {
            monitor.validate().map_err(ConfigError::Monitoring)?;
        }
        self.ui.validate().map_err(ConfigError::Ui)?;
        // A console on a listener of its own must be servable there; under /ui/ of the HTTP
        // listener it refuses to serve instead (see `Receiver::serve`).
        if let Some(addr) = self.ui.listen_addr.filter(|_| self.ui.enabled) {
            self.ui.check_exposure(addr).map_err(ConfigError::Ui)?;
        }
        Ok(())
    }

    /// Where the console is served: `ui.listen_addr`, or the HTTP listener's address; `None`
    /// when the console is off.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.ui
            .enabled
            .then(|| self.ui.listen_addr.unwrap_or(self.server.http_addr))
    }

    /// What a command's state change needs to know of this configuration: whether export is
    /// on, content storage, triage routing, the join and the detectors, so a label or a triage
    /// change is judged as the receiver would judge it.
    pub fn direct_settings(&self) -> Result<DirectSettings, ExportConfigError> {
        let export = self.export.enabled()?;
        Ok(
            DirectSettings::new(export, self.store.store_content, &self.triage, &self.notify)
                .with_detectors(&self.detectors)
                .with_join(&self.join),
        )
    }
}

fn invalid(key: impl Into<String>, reason: InvalidSetting) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason,
    }
}

/// `Err` unless `value` is positive.
fn positive<T: Default + PartialEq>(key: &str, value: T) -> Result<(), ConfigError> {
    if value == T::default() {
        return Err(invalid(key, InvalidSetting::Zero));
    }
    Ok(())
}

/// `Err` unless `value` is within 0..=1 (NaN is not).
fn fraction(key: &str, value: f64) -> Result<(), ConfigError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(invalid(key, InvalidSetting::NotAFraction(value)));
    }
    Ok(())
}

/// An URL with a host whose scheme is one of `schemes`.
fn is_url(url: &str, schemes: &[&str]) -> bool {
    url.parse::<http::Uri>().is_ok_and(|uri| {
        uri.scheme_str()
            .is_some_and(|scheme| schemes.contains(&scheme))
            && uri.host().is_some_and(|host| !host.is_empty())
    })
}

fn validate_server(server: &ServerConfig) -> Result<(), ConfigError> {
    positive("server.max_grpc_message_mib", server.max_grpc_message_mib)?;
    positive("server.max_http_body_mib", server.max_http_body_mib)?;
    positive(
        "server.max_in_flight_requests",
        server.max_in_flight_requests,
    )?;
    positive(
        "server.max_decoded_request_mib",
        server.max_decoded_request_mib,
    )?;
    positive("server.max_request_elements", server.max_request_elements)?;
    positive(
        "server.max_decoded_in_flight_mib",
        server.max_decoded_in_flight_mib,
    )?;
    positive(
        "server.max_in_flight_elements",
        server.max_in_flight_elements,
    )?;
    // The requests in flight share the budget with their bodies (as received and inflated):
    // below one request's worth, the largest requests would be shed as "busy" forever
    // instead of refused as too large.
    let largest_request_mib = server
        .max_decoded_request_mib
        .saturating_add(2 * server.max_http_body_mib.max(server.max_grpc_message_mib));
    if server.max_decoded_in_flight_mib < largest_request_mib {
        return Err(invalid(
            "server.max_decoded_in_flight_mib",
            InvalidSetting::Below {
                value: server.max_decoded_in_flight_mib as f64,
                other: "server.max_decoded_request_mib + 2 × the largest body limit",
                other_value: largest_request_mib as f64,
            },
        ));
    }
    if server.max_in_flight_elements < server.max_request_elements {
        return Err(invalid(
            "server.max_in_flight_elements",
            InvalidSetting::Below {
                value: server.max_in_flight_elements as f64,
                other: "server.max_request_elements",
                other_value: server.max_request_elements as f64,
            },
        ));
    }
    positive("server.max_connections", server.max_connections)?;
    positive(
        "server.header_read_timeout_secs",
        server.header_read_timeout_secs,
    )?;
    positive(
        "server.body_read_timeout_secs",
        server.body_read_timeout_secs,
    )?;
    positive("server.idle_timeout_secs", server.idle_timeout_secs)?;
    positive(
        "server.http2_keepalive_interval_secs",
        server.http2_keepalive_interval_secs,
    )?;
    positive(
        "server.http2_keepalive_timeout_secs",
        server.http2_keepalive_timeout_secs,
    )?;
    positive(
        "server.grpc_max_concurrent_streams",
        server.grpc_max_concurrent_streams,
    )?;
    let same = |a: SocketAddr, b: SocketAddr| a == b && a.port() != 0;
    if same(server.http_addr, server.grpc_addr) {
        return Err(invalid(
            "server.http_addr",
            InvalidSetting::SameAddress(server.http_addr),
        ));
    }
    if let Some(feedback_addr) = server.feedback_addr {
        if same(feedback_addr, server.grpc_addr) || same(feedback_addr, server.http_addr) {
            return Err(invalid(
                "server.feedback_addr",
                InvalidSetting::SameAddress(feedback_addr),
            ));
        }
    }
    Ok(())
}

fn validate_feedback(feedback: &FeedbackApiConfig) -> Result<(), ConfigError> {
    // The feedback module's own checks, the ones its routes run: secret length, origins,
    // trusted proxies.
    if let Err(error) = crate::feedback_api::validate(feedback) {
        let key = match error {
            FeedbackConfigError::SecretTooShort { .. } => "feedback.token_secret",
            FeedbackConfigError::InvalidTrustedProxy(_) => "feedback.trusted_proxies",
            _ => "feedback.allowed_origins",
        };
        return Err(invalid(key, InvalidSetting::Feedback(error)));
    }
    positive("feedback.max_body_kib", feedback.max_body_kib)?;
    if feedback.rate_limit_per_min > 0 {
        positive("feedback.rate_limit_burst", feedback.rate_limit_burst)?;
        positive(
            "feedback.rate_limit_max_clients",
            feedback.rate_limit_max_clients,
        )?;
    }
    if feedback.capture_comments {
        positive("feedback.max_comment_chars", feedback.max_comment_chars)?;
    }
    Ok(())
}

fn validate_telemetry(telemetry: &TelemetryConfig) -> Result<(), ConfigError> {
    if let Some(endpoint) = &telemetry.metrics_endpoint {
        if !is_url(endpoint, &["http"]) {
            return Err(invalid(
                "telemetry.metrics_endpoint",
                InvalidSetting::NotHttpUrl,
            ));
        }
    }
    positive(
        "telemetry.metrics_interval_secs",
        telemetry.metrics_interval_secs,
    )?;
    positive(
        "telemetry.metrics_timeout_secs",
        telemetry.metrics_timeout_secs,
    )
}

fn validate_store(store: &StoreConfig) -> Result<(), ConfigError> {
    if store.path.as_os_str().is_empty() {
        return Err(invalid("store.path", InvalidSetting::Empty));
    }
    positive("store.retention_secs", store.retention_secs)?;
    positive("store.max_size_mib", store.max_size_mib)?;
    positive("store.prune_interval_secs", store.prune_interval_secs)?;
    positive("store.max_queued_records", store.max_queued_records)?;
    positive("store.max_batch_records", store.max_batch_records)?;
    if store.engine == closedloop_store::Engine::Postgres
        && store.url.as_ref().is_none_or(|url| url.expose().is_empty())
    {
        return Err(invalid("store.url", InvalidSetting::Empty));
    }
    Ok(())
}

fn validate_join(join: &JoinConfig) -> Result<(), ConfigError> {
    // `wait_secs` may be 0: feedback is then recorded at once, enriched only when its span
    // is already known.
    positive("join.max_pending", join.max_pending)
}

fn validate_export(export: &ExportConfig) -> Result<(), ConfigError> {
    export.resolve().map_err(|error| {
        let key = match &error {
            ExportConfigError::Header(name) => format!("export.headers.{name}"),
            _ if export.traces_endpoint.is_some() => "export.traces_endpoint".to_owned(),
            _ => "export.endpoint".to_owned(),
        };
        invalid(key, InvalidSetting::Export(error))
    })?;
    export
        .check_sinks()
        .map_err(|(key, error)| invalid(key.to_owned(), InvalidSetting::Export(error)))?;
    if let Some(timeout) = export.timeout_millis {
        positive("export.timeout_millis", timeout)?;
    }
    positive("export.max_batch_spans", export.max_batch_spans)?;
    positive(
        "export.initial_backoff_millis",
        export.initial_backoff_millis,
    )?;
    positive("export.max_backoff_secs", export.max_backoff_secs)
}

fn validate_triage(triage: &TriageConfig) -> Result<(), ConfigError> {
    positive("triage.check_interval_secs", triage.check_interval_secs)?;
    if let Some(sla) = triage.default_sla_secs {
        positive("triage.default_sla_secs", sla)?;
    }
    for (index, rule) in triage.rules.iter().enumerate() {
        if rule.owner.trim().is_empty() {
            return Err(invalid(
                format!("triage.rules[{index}].owner"),
                InvalidSetting::Empty,
            ));
        }
        if let Some(sla) = rule.sla_secs {
            positive(&format!("triage.rules[{index}].sla_secs"), sla)?;
        }
    }
    Ok(())
}

fn validate_review(review: &ReviewConfig) -> Result<(), ConfigError> {
    fraction(
        "review.implicit_negative_share",
        review.implicit_negative_share,
    )
}

fn validate_notify(notify: &NotifyConfig) -> Result<(), ConfigError> {
    if let Some(url) = &notify.webhook_url {
        if !is_url(url, &["http", "https"]) {
            return Err(invalid("notify.webhook_url", InvalidSetting::NotWebUrl));
        }
    }
    positive("notify.timeout_millis", notify.timeout_millis)?;
    positive(
        "notify.initial_backoff_millis",
        notify.initial_backoff_millis,
    )?;
    positive("notify.max_backoff_secs", notify.max_backoff_secs)
}

fn validate_detectors(detectors: &DetectorsConfig) -> Result<(), ConfigError> {
    let rephrase = &detectors.rephrase;
    positive("detectors.rephrase.window_secs", rephrase.window_secs)?;
    fraction("detectors.rephrase.threshold", rephrase.threshold)?;
    fraction("detectors.rephrase.text_threshold", rephrase.text_threshold)?;
    fraction(
        "detectors.rephrase.semantic_threshold",
        rephrase.semantic_threshold,
    )?;
    fraction(
        "detectors.rephrase.semantic_lexical_threshold",
        rephrase.semantic_lexical_threshold,
    )?;
    fraction("detectors.rephrase.semantic_floor", rephrase.semantic_floor)?;
    if let Some(dir) = &rephrase.embedding_model_dir {
        if !dir.join("model.safetensors").is_file() {
            return Err(invalid(
                "detectors.rephrase.embedding_model_dir",
                InvalidSetting::NotAModelDir(dir.clone()),
            ));
        }
    }
    if let Some(name) = &rephrase.embedding_model_name {
        if let Err(error) = closedloop_tracing::SemanticHasher::new(name, 1) {
            return Err(invalid(
                "detectors.rephrase.embedding_model_name",
                InvalidSetting::ModelName(error),
            ));
        }
    }
    let regenerate = &detectors.regenerate;
    positive("detectors.regenerate.window_secs", regenerate.window_secs)?;
    fraction("detectors.regenerate.threshold", regenerate.threshold)?;
    // A repeated query is the stronger signal: below the rephrase threshold it would take
    // every rephrasing.
    if rephrase.enabled && regenerate.enabled && regenerate.threshold < rephrase.threshold {
        return Err(invalid(
            "detectors.regenerate.threshold",
            InvalidSetting::Below {
                value: regenerate.threshold,
                other: "detectors.rephrase.threshold",
                other_value: rephrase.threshold,
            },
        ));
    }
    let abandon = &detectors.abandon;
    positive("detectors.abandon.window_secs", abandon.window_secs)?;
    positive(
        "detectors.abandon.check_interval_secs",
        abandon.check_interval_secs,
    )?;
    fraction(
        "detectors.edit.max_changed_fraction",
        detectors.edit.max_changed_fraction,
    )
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
    /// would take more is shed with HTTP 503 / gRPC `UNAVAILABLE` and a retry delay. It must
    /// be at least `max_decoded_request_mib` plus twice the larger of `max_http_body_mib` and
    /// `max_grpc_message_mib` (a gzip body and its inflated copy beside the decoded request),
    /// or the largest requests could never be served. Default 512.
    #[serde(default = "default_max_decoded_in_flight_mib")]
    pub max_decoded_in_flight_mib: usize,
    /// The most messages all OTLP requests in flight may hold together; beyond it requests are
    /// shed like over `max_decoded_in_flight_mib`. At least `max_request_elements`.
    /// Default 8000000.
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
    /// A separate listen address for the browser feedback API. When set, `POST /v1/feedback`
    /// (and `GET /healthz`) are served there only, and `http_addr` serves OTLP/HTTP and
    /// `/healthz` only, so the port browsers reach cannot write spans. Default: none (feedback
    /// is served on `http_addr`).
    #[serde(default)]
    pub feedback_addr: Option<SocketAddr>,
    /// The bearer token OTLP clients must send to export spans: `Authorization: Bearer
    /// <token>` on `POST /v1/traces` (HTTP 401 without it) and `authorization` metadata on
    /// OTLP/gRPC (`UNAUTHENTICATED`). `/healthz` and `/v1/feedback` are not affected. Prefer
    /// the `CLOSEDLOOP_INGEST_TOKEN` variable to writing it here. Default: none (ingest is
    /// open to anyone who can reach the ports).
    #[serde(default)]
    pub ingest_token: Option<IngestToken>,
    /// The most connections each listener keeps open at once. At the limit, new connections
    /// wait in the kernel's backlog until one closes, and a warning is logged. Keep the sum
    /// over the listeners well below the process's open-file limit (`ulimit -n`). Default 256.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a client has to send a complete request head, in seconds: from accepting the
    /// connection, or on a keep-alive connection from the first byte of the next request. On
    /// OTLP/gRPC, how long a new connection has to send the HTTP/2 preface. Default 10.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// How long a client has to send a request body once its headers arrived, in seconds;
    /// a later body is refused with HTTP 400. On OTLP/gRPC, where the message and its
    /// processing are one call, the deadline of the whole call (`CANCELLED` after it).
    /// Default 30.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
    /// How long an HTTP keep-alive connection may wait for its next request, in seconds,
    /// before it is closed. Default 60.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// How often the OTLP/gRPC listener pings each connection (HTTP/2 PING), in seconds.
    /// Default 30.
    #[serde(default = "default_http2_keepalive_interval_secs")]
    pub http2_keepalive_interval_secs: u64,
    /// How long a ping may go unanswered before the connection is closed, in seconds: a
    /// client that went away frees its connection slot. Default 10.
    #[serde(default = "default_http2_keepalive_timeout_secs")]
    pub http2_keepalive_timeout_secs: u64,
    /// The most OTLP/gRPC calls in progress on one connection (HTTP/2
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`). Default 100.
    #[serde(default = "default_grpc_max_concurrent_streams")]
    pub grpc_max_concurrent_streams: u32,
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

const fn default_max_connections() -> usize {
    256
}

const fn default_header_read_timeout_secs() -> u64 {
    10
}

const fn default_body_read_timeout_secs() -> u64 {
    30
}

const fn default_idle_timeout_secs() -> u64 {
    60
}

const fn default_http2_keepalive_interval_secs() -> u64 {
    30
}

const fn default_http2_keepalive_timeout_secs() -> u64 {
    10
}

const fn default_grpc_max_concurrent_streams() -> u32 {
    100
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
            feedback_addr: None,
            ingest_token: None,
            max_connections: default_max_connections(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            body_read_timeout_secs: default_body_read_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            http2_keepalive_interval_secs: default_http2_keepalive_interval_secs(),
            http2_keepalive_timeout_secs: default_http2_keepalive_timeout_secs(),
            grpc_max_concurrent_streams: default_grpc_max_concurrent_streams(),
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
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FeedbackApiConfig {
    /// The secret feedback tokens are signed with: the same secret the application gives
    /// `closedloop-tracing` to mint them. Prefer the `CLOSEDLOOP_FEEDBACK_TOKEN_SECRET`
    /// variable to writing it here. Without a secret the endpoint is off and answers 404. A
    /// secret shorter than 32 bytes, the empty one included, is refused at startup. Default:
    /// none.
    #[serde(default)]
    pub token_secret: Option<Secret>,
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
    /// proxy every request has the proxy's address: list the proxy in `trusted_proxies`.
    /// Default 60.
    #[serde(default = "default_rate_limit_per_min")]
    pub rate_limit_per_min: u32,
    /// How many requests a client may make in a burst above the average rate. Default 20.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// The most clients whose rate-limit state is kept; when full, a new client takes the
    /// place of the least recently seen one (which starts again with a full burst if it comes
    /// back). New clients are never refused because the table is full. Default 100000.
    #[serde(default = "default_rate_limit_max_clients")]
    pub rate_limit_max_clients: usize,
    /// Reverse proxies (IP addresses or CIDR blocks, e.g. `10.0.0.0/8`, `2001:db8::/32`) whose
    /// forwarding headers name the client for rate limiting. For a request from one of them,
    /// the client is the rightmost address of `X-Forwarded-For` that is not a trusted proxy;
    /// a request without `X-Forwarded-For` is read from `Forwarded` (RFC 7239) the same way.
    /// The proxy must append the address it received the request from to the header it
    /// sets (nginx `$proxy_add_x_forwarded_for`, HAProxy `option forwardfor`, Envoy and cloud
    /// load balancers do); a proxy that only sets `Forwarded` must remove a client-sent
    /// `X-Forwarded-For`. Headers from peers not listed here are ignored. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Whether free-text feedback comments are stored: the `comment` of `POST /v1/feedback`
    /// and `closedloop.feedback.comment` on OTLP feedback spans and annotations alike.
    /// Comments are content a user typed and may hold personal data, so they are dropped
    /// before they reach the store unless this is true and `store.store_content` is true too.
    /// Default false.
    #[serde(default)]
    pub capture_comments: bool,
    /// The longest comment kept, in characters; longer comments are cut (on every path).
    /// Default 2000.
    #[serde(default = "default_max_comment_chars")]
    pub max_comment_chars: usize,
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
            trusted_proxies: Vec::new(),
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
    fn validate_names_the_key_of_each_unusable_value() {
        for (text, key) in [
            (
                "[server]\nmax_http_body_mib = 0",
                "server.max_http_body_mib",
            ),
            (
                "[server]\ngrpc_addr = \"127.0.0.1:7000\"\nhttp_addr = \"127.0.0.1:7000\"",
                "server.http_addr",
            ),
            (
                "[feedback]\nallowed_origins = [\"app.example.com\"]",
                "feedback.allowed_origins",
            ),
            ("[feedback]\ntoken_secret = \"\"", "feedback.token_secret"),
            (
                "[feedback]\ntoken_secret = \"too-short\"",
                "feedback.token_secret",
            ),
            (
                "[feedback]\ntrusted_proxies = [\"10.0.0.0/33\"]",
                "feedback.trusted_proxies",
            ),
            (
                "[server]\nmax_decoded_in_flight_mib = 64\nmax_decoded_request_mib = 128",
                "server.max_decoded_in_flight_mib",
            ),
            (
                "[server]\nmax_decoded_in_flight_mib = 128\nmax_decoded_request_mib = 128",
                "server.max_decoded_in_flight_mib",
            ),
            (
                "[server]\nmax_in_flight_elements = 10\nmax_request_elements = 11",
                "server.max_in_flight_elements",
            ),
            (
                "[server]\nmax_request_elements = 0",
                "server.max_request_elements",
            ),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            (
                "[server]\nheader_read_timeout_secs = 0",
                "server.header_read_timeout_secs",
            ),
            (
                "[server]\nfeedback_addr = \"127.0.0.1:4318\"",
                "server.feedback_addr",
            ),
            (
                "[telemetry]\nmetrics_endpoint = \"localhost:4317\"",
                "telemetry.metrics_endpoint",
            ),
            (
                "[telemetry]\nmetrics_interval_secs = 0",
                "telemetry.metrics_interval_secs",
            ),
            ("[store]\nmax_batch_records = 0", "store.max_batch_records"),
            ("[join]\nmax_pending = 0", "join.max_pending"),
            (
                "[export]\nendpoint = \"https://collector:4318\"",
                "export.endpoint",
            ),
            (
                "[export]\ntraces_endpoint = \"collector\"",
                "export.traces_endpoint",
            ),
            (
                "[export]\nendpoint = \"http://c:4318\"\nheaders = { \"bad name\" = \"x\" }",
                "export.headers.bad name",
            ),
            ("[export]\nmax_batch_spans = 0", "export.max_batch_spans"),
            (
                "[triage]\ncheck_interval_secs = 0",
                "triage.check_interval_secs",
            ),
            ("[[triage.rules]]\nowner = \" \"", "triage.rules[0].owner"),
            (
                "[review]\nimplicit_negative_share = -0.1",
                "review.implicit_negative_share",
            ),
            (
                "[review]\nimplicit_negative_share = nan",
                "review.implicit_negative_share",
            ),
            (
                "[notify]\nwebhook_url = \"not a url\"",
                "notify.webhook_url",
            ),
            ("[notify]\ntimeout_millis = 0", "notify.timeout_millis"),
            (
                "[detectors.rephrase]\ntext_threshold = 2.0",
                "detectors.rephrase.text_threshold",
            ),
            (
                "[detectors.regenerate]\nthreshold = 0.5",
                "detectors.regenerate.threshold",
            ),
            (
                "[detectors.abandon]\ncheck_interval_secs = 0",
                "detectors.abandon.check_interval_secs",
            ),
            (
                "[detectors.edit]\nmax_changed_fraction = 1.5",
                "detectors.edit.max_changed_fraction",
            ),
            ("[store]\nengine = \"postgres\"", "store.url"),
            ("[store]\nengine = \"postgres\"\nurl = \"\"", "store.url"),
        ] {
            let config = Config::from_toml(text).unwrap();
            match config.validate() {
                Err(ConfigError::Invalid { key: found, .. }) => assert_eq!(found, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // What stays allowed: port 0 twice, a zero join wait, rate limiting off.
        let text = "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n\
            [join]\nwait_secs = 0\n[feedback]\nrate_limit_per_min = 0\nrate_limit_burst = 0\n";
        Config::from_toml(text).unwrap().validate().unwrap();
    }

    #[test]
    fn secret_is_redacted_in_debug_output() {
        let config = Config::from_toml("[feedback]\ntoken_secret = \"hunter2\"\n").unwrap();
        assert_eq!(config.feedback.token_secret.as_deref(), Some("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn ingest_token_is_validated_and_redacted() {
        let config = Config::from_toml("[server]\ningest_token = \"s3cr3t-ingest\"\n").unwrap();
        assert!(config.server.ingest_token.is_some());
        assert!(!format!("{config:?}").contains("s3cr3t-ingest"));
        assert!(Config::from_toml("[server]\ningest_token = \"\"\n").is_err());
    }

    /// `CLOSEDLOOP_STORE_URL` gives `store.url` over the file's, and a PostgreSQL store with
    /// it is valid; the password in it is not printed.
    #[test]
    fn store_url_comes_from_the_environment() {
        let mut config = Config::from_toml(
            "[store]\nengine = \"postgres\"\nurl = \"postgres://file@db/closedloop\"\n",
        )
        .unwrap();
        let env = |name: &str| {
            (name == STORE_URL_ENV).then(|| "postgres://closedloop:pa55word@db/closedloop".into())
        };
        config.layer(&Flags::default(), &env).unwrap();
        assert_eq!(
            config.store.url.as_ref().map(|url| url.expose()),
            Some("postgres://closedloop:pa55word@db/closedloop")
        );
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("pa55word"));
    }
}
