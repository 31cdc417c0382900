//! The closedloop receiver: OTLP in, feedback joined to the judged span, failure records out.
//!
//! The receiver takes the span stream of an LLM application (directly from the application or
//! through an OpenTelemetry Collector), remembers what each LLM response was made of (prompt
//! template, retrieved chunks, model, data source, index version), and when feedback says a
//! response failed, writes a *failure record*: durable in its SQLite store, and exported over
//! OTLP as a span in the judged response's own trace, so a Jaeger or Tempo user opening the
//! failing trace sees the answer, its chunks, its template version and the complaint together.
//!
//! [`Pipeline`] is the core: the network edge hands it decoded OTLP requests and feedback.
//!
//! ```no_run
//! use closedloop_receiver::{Pipeline, PipelineConfig};
//! use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::start(PipelineConfig::default()).await?;
//! let outcome = pipeline.ingest(ExportTraceServiceRequest::default()).await?;
//! assert_eq!(outcome.rejected_spans, 0);
//! pipeline.shutdown().await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod config;
mod edge;
mod feedback_api;
#[doc(hidden)]
pub mod fuzzing;
mod lineage;
mod otlp;
mod pipeline;
use closedloop_delivery::export;
use closedloop_engine::{detectors, direct, join, rules, secret, store, timefmt, vocab};
use closedloop_store::records;
mod semantic;
mod serve;
mod spans;
mod telemetry;
mod triage_task;

pub use config::{
    Config, ConfigError, EnvironmentError, FeedbackApiConfig, Flags, InvalidSetting, ServerConfig,
    TelemetryConfig, FEEDBACK_TOKEN_SECRET_ENV, INGEST_TOKEN_ENV, STORE_URL_ENV,
};
pub use detectors::{
    AbandonDetectorConfig, DetectorsConfig, EditDetectorConfig, QueryComparison,
    RegenerateDetectorConfig, RephraseDetectorConfig,
};
pub use direct::DirectSettings;
pub use edge::{IngestToken, IngestTokenError};
pub use export::{
    AnnotationTarget, AnnotatorKind, ExportCompression, ExportConfig, ExportConfigError,
    ExportProtocol, LangfuseConfig, PhoenixConfig,
};
pub use feedback_api::{FeedbackApiError, FeedbackConfigError};
pub use join::JoinConfig;
pub use otlp::{OtlpError, ScanError};
pub use pipeline::{
    FailureCategory, FeedbackInput, FeedbackKind, FeedbackOutcome, FeedbackSignal, FeedbackSource,
    IngestError, IngestOutcome, Pipeline, PipelineConfig, PipelineError, PipelineStats,
};
pub use secret::Secret;
pub use semantic::EmbeddingModelError;
pub use serve::{Listeners, Receiver, ReceiverBuilder, ServeError};
pub use spans::SpansConfig;
pub use store::{StoreConfig, StoreError, Synchronous};
pub use telemetry::TelemetryError;
