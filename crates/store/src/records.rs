//! The typed records the receiver keeps, read from spans or the feedback API.

use closedloop_semconv::attribute::{
    FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource, RetrievalStage,
};

/// A trace id, as on the wire.
pub type TraceId = [u8; 16];
/// A span id, as on the wire.
pub type SpanId = [u8; 8];

/// The identity of one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanRef {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

impl SpanRef {
    /// Reads ids from OTLP bytes; `None` unless they are well-sized and not all zero.
    pub fn from_bytes(trace_id: &[u8], span_id: &[u8]) -> Option<Self> {
        let trace_id: TraceId = trace_id.try_into().ok()?;
        let span_id: SpanId = span_id.try_into().ok()?;
        Self::new(trace_id, span_id)
    }

    /// `None` when either id is all zeros (invalid in W3C trace context).
    pub fn new(trace_id: TraceId, span_id: SpanId) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self { trace_id, span_id })
    }
}

/// The prompt template of a response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    pub id: Option<String>,
    pub version: Option<String>,
    /// `sha256:<64 hex>`.
    pub hash: Option<String>,
    /// Kept once per hash when a span carries it.
    pub text: Option<String>,
}

/// Content attributes, present only when the application opted in to capturing them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    pub input: Option<String>,
    pub output: Option<String>,
    pub query: Option<String>,
}

impl Content {
    pub fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.is_none() && self.query.is_none()
    }
}

/// An LLM response span: what feedback judges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    pub span: Option<SpanRef>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub response_id: Option<String>,
    pub template: Template,
    /// `None`: the span said nothing about context; `Some(empty)`: no context.
    pub chunk_ids: Option<Vec<String>>,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// The request parameters, as a compact JSON object keyed by attribute.
    pub parameters: Option<String>,
    pub data_source: Option<String>,
    pub index_version: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub fingerprint: Option<String>,
    pub content: Content,
}

/// A retrieval, rerank or filter span, kept briefly so that the LLM span of the same trace can
/// take its chunk ids.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieval {
    pub trace_id: TraceId,
    pub end_unix_nano: u64,
    pub stage: RetrievalStage,
    pub chunk_ids: Vec<String>,
    pub data_source: Option<String>,
    pub index_version: Option<String>,
}

/// One piece of feedback.
#[derive(Clone, Debug, PartialEq)]
pub struct Feedback {
    /// The idempotency id.
    pub feedback_id: String,
    /// The feedback span itself, when the feedback came as a span.
    pub span: Option<SpanRef>,
    /// The judged span: the span link's target, or the ids the API named.
    pub target: Option<SpanRef>,
    /// The join key of feedback that names no judged span (`target` is `None`).
    pub response_id: Option<String>,
    pub signal: FeedbackSignal,
    pub kind: FeedbackKind,
    pub value: Option<f64>,
    pub category: Option<FailureCategory>,
    pub source: FeedbackSource,
    pub comment: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub time_unix_nano: u64,
}

pub use crate::evalset::EvalsetRecord;
pub use crate::notifications::Notification;
pub use crate::report::{ReportResponse, SignalCount};
pub use crate::review::{
    ReviewCandidate, ReviewDay, ReviewLabel, ReviewLabelUpdate, ReviewRow, ReviewStratum,
};
pub use crate::triage::{SlaBreach, TriageNote, TriageRecord, TriageState};
