//! The typed records the receiver keeps, read from spans or the feedback API.

use crate::vocab::{FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource, RetrievalStage};

/// A trace id, as on the wire.
pub(crate) type TraceId = [u8; 16];
/// A span id, as on the wire.
pub(crate) type SpanId = [u8; 8];

/// The identity of one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SpanRef {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
}

impl SpanRef {
    /// Reads ids from OTLP bytes; `None` unless they are well-sized and not all zero.
    pub(crate) fn from_bytes(trace_id: &[u8], span_id: &[u8]) -> Option<Self> {
        let trace_id: TraceId = trace_id.try_into().ok()?;
        let span_id: SpanId = span_id.try_into().ok()?;
        Self::new(trace_id, span_id)
    }

    /// `None` when either id is all zeros (invalid in W3C trace context).
    pub(crate) fn new(trace_id: TraceId, span_id: SpanId) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self { trace_id, span_id })
    }
}

/// The prompt template of a response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) id: Option<String>,
    pub(crate) version: Option<String>,
    /// `sha256:<64 hex>`.
    pub(crate) hash: Option<String>,
    /// Kept once per hash when a span carries it.
    pub(crate) text: Option<String>,
}

/// Content attributes, present only when the application opted in to capturing them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Content {
    pub(crate) input: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) query: Option<String>,
}

impl Content {
    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.is_none() && self.query.is_none()
    }
}

/// An LLM response span: what feedback judges.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Response {
    pub(crate) span: Option<SpanRef>,
    pub(crate) start_unix_nano: u64,
    pub(crate) end_unix_nano: u64,
    pub(crate) response_id: Option<String>,
    pub(crate) template: Template,
    /// `None`: the span said nothing about context; `Some(empty)`: no context.
    pub(crate) chunk_ids: Option<Vec<String>>,
    pub(crate) model: Option<String>,
    pub(crate) provider: Option<String>,
    /// The request parameters, as a compact JSON object keyed by attribute.
    pub(crate) parameters: Option<String>,
    pub(crate) data_source: Option<String>,
    pub(crate) index_version: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) fingerprint: Option<String>,
    pub(crate) content: Content,
}

/// A retrieval, rerank or filter span, kept briefly so that the LLM span of the same trace can
/// take its chunk ids.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Retrieval {
    pub(crate) trace_id: TraceId,
    pub(crate) end_unix_nano: u64,
    pub(crate) stage: RetrievalStage,
    pub(crate) chunk_ids: Vec<String>,
    pub(crate) data_source: Option<String>,
    pub(crate) index_version: Option<String>,
}

/// One piece of feedback.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Feedback {
    /// The idempotency id.
    pub(crate) feedback_id: String,
    /// The feedback span itself, when the feedback came as a span.
    pub(crate) span: Option<SpanRef>,
    /// The judged span: the span link's target, or the ids the API named.
    pub(crate) target: Option<SpanRef>,
    /// The join key of feedback that names no judged span (`target` is `None`).
    pub(crate) response_id: Option<String>,
    pub(crate) signal: FeedbackSignal,
    pub(crate) kind: FeedbackKind,
    pub(crate) value: Option<f64>,
    pub(crate) category: Option<FailureCategory>,
    pub(crate) source: FeedbackSource,
    pub(crate) comment: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) time_unix_nano: u64,
}
