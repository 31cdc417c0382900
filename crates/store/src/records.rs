//! The typed records the receiver keeps, read from spans or the feedback API.

use closedloop_semconv::attribute::{
    FailureCategory, FailureSeverity, FailureStage, FeedbackKind, FeedbackSignal, FeedbackSource,
    RetrievalStage, TriageStatus,
};

/// A trace id, as on the wire.
pub type TraceId = [u8; 16];
/// A span id, as on the wire.
pub type SpanId = [u8; 8];

/// The identity of one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanRef {
    /// The trace id.
    pub trace_id: TraceId,
    /// The span id.
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
    /// `closedloop.template.id`.
    pub id: Option<String>,
    /// `closedloop.template.version`.
    pub version: Option<String>,
    /// `sha256:<64 hex>`.
    pub hash: Option<String>,
    /// Kept once per hash when a span carries it.
    pub text: Option<String>,
}

/// Content attributes, present only when the application opted in to capturing them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    /// The prompt messages.
    pub input: Option<String>,
    /// The output messages.
    pub output: Option<String>,
    /// The query text.
    pub query: Option<String>,
}

impl Content {
    /// Whether no content attribute was carried.
    pub fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.is_none() && self.query.is_none()
    }
}

/// An LLM response span: what feedback judges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// The span's ids (`None` only for records built in tests).
    pub span: Option<SpanRef>,
    /// When the span started.
    pub start_unix_nano: u64,
    /// When the span ended.
    pub end_unix_nano: u64,
    /// `gen_ai.response.id`.
    pub response_id: Option<String>,
    /// Its prompt template.
    pub template: Template,
    /// `None`: the span said nothing about context; `Some(empty)`: no context.
    pub chunk_ids: Option<Vec<String>>,
    /// `gen_ai.request.model` (or the response model).
    pub model: Option<String>,
    /// `gen_ai.provider.name`.
    pub provider: Option<String>,
    /// The request parameters, as a compact JSON object keyed by attribute.
    pub parameters: Option<String>,
    /// The retrieval data source.
    pub data_source: Option<String>,
    /// The retrieval index version.
    pub index_version: Option<String>,
    /// `session.id`.
    pub session_id: Option<String>,
    /// `user.id`.
    pub user_id: Option<String>,
    /// The fingerprint of the query, for the session detectors.
    pub fingerprint: Option<String>,
    /// The semantic fingerprint of the query (`closedloop.query.semantic_fingerprint`).
    pub semantic_fingerprint: Option<String>,
    /// Content attributes, when captured.
    pub content: Content,
}

/// A retrieval, rerank or filter span, kept briefly so that the LLM span of the same trace can
/// take its chunk ids.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieval {
    /// The trace the step belongs to.
    pub trace_id: TraceId,
    /// When the span ended.
    pub end_unix_nano: u64,
    /// Retrieval, rerank or filter.
    pub stage: RetrievalStage,
    /// The chunk ids it returned; `None` when the span named none.
    pub chunk_ids: Option<Vec<String>>,
    /// The fingerprint of the step's query (`closedloop.query.fingerprint`, or derived from the
    /// query the span carries).
    pub fingerprint: Option<String>,
    /// The step's query text, when the span carried it (content: stored only with the response
    /// it is carried to, and only when content is stored).
    pub query: Option<String>,
    /// The retrieval data source.
    pub data_source: Option<String>,
    /// The retrieval index version.
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
    /// What the feedback says.
    pub signal: FeedbackSignal,
    /// Explicit or implicit.
    pub kind: FeedbackKind,
    /// Its value (a score, an edit similarity), when it has one.
    pub value: Option<f64>,
    /// The failure category the feedback names, if any.
    pub category: Option<FailureCategory>,
    /// Who gave it.
    pub source: FeedbackSource,
    /// A free-text comment.
    pub comment: Option<String>,
    /// `session.id`.
    pub session_id: Option<String>,
    /// `user.id`.
    pub user_id: Option<String>,
    /// When it was given.
    pub time_unix_nano: u64,
}

pub use crate::evalset::EvalsetRecord;
pub use crate::failures::{
    FailureCursor, FailureDetail, FailureFacets, FailureFilter, FailureListRow, FailureRevision,
    RecordFeedback, RevisionCause, TraceIdRange,
};
pub use crate::monitors::{Alert, LabelTick, SignalTick, TickCounts};
pub use crate::notifications::Notification;
pub use crate::overview::{DayCount, DayVersionCount, OwnerLoad, ReviewProgress};
pub use crate::report::{ReportResponse, ReviewedFeedback, ReviewedResponse, SignalCount};
pub use crate::review::{
    ReviewCandidate, ReviewDay, ReviewDayProgress, ReviewLabel, ReviewLabelUpdate, ReviewRow,
    ReviewStratum,
};
pub use crate::triage::{
    SlaBreach, TriageBoard, TriageLane, TriageNote, TriageRecord, TriageState,
};

/// The state of a feedback row, as stored (`feedback.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackState {
    /// Negative, waiting for its response span.
    Waiting = 0,
    /// Negative, joined to its response span.
    Joined = 1,
    /// Negative, recorded without its response span (the join window passed).
    Unjoined = 2,
    /// Not negative: stored only.
    Stored = 3,
}

/// A feedback row waiting for its response span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingRow {
    /// The feedback row.
    pub row: i64,
    /// When it was received, in Unix seconds.
    pub received_s: i64,
    /// The feedback span, when the feedback came as one.
    pub span: Option<SpanRef>,
    /// The span it links to (the judged span it names).
    pub link: Option<SpanRef>,
    /// The `gen_ai.response.id` it names.
    pub response_id: Option<String>,
}

/// One negative feedback item of a failure record.
#[derive(Clone, Debug, PartialEq)]
pub struct NegativeRow {
    /// Its idempotency id.
    pub feedback_id: String,
    /// What the feedback says.
    pub signal: FeedbackSignal,
    /// Explicit or implicit.
    pub kind: FeedbackKind,
    /// The failure category it names, if any.
    pub category: Option<FailureCategory>,
    /// The feedback span, when the feedback came as one.
    pub span: Option<SpanRef>,
    /// When it was given, in Unix nanoseconds.
    pub time_ns: i64,
}

/// The stored state of a failure record that matters for its next revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureState {
    /// Its latest revision.
    pub revision: i64,
    /// Whether it was written with its response's details.
    pub enriched: bool,
}

/// The stored fields of one failure record revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureRow<'a> {
    /// The judged span, which keys the record.
    pub key: SpanRef,
    /// The time of the revision, in Unix seconds (also the creation time of a new record).
    pub now_s: i64,
    /// Its category.
    pub category: FailureCategory,
    /// Its stage.
    pub stage: FailureStage,
    /// Its severity.
    pub severity: FailureSeverity,
    /// Its signals, comma-separated.
    pub signals: &'a str,
    /// How many negative feedback items it has.
    pub feedback_count: i64,
    /// This revision.
    pub revision: i64,
    /// Whether it carries its response's details.
    pub enriched: bool,
    /// The triage status a new record starts with (an existing record keeps its own).
    pub triage_status: TriageStatus,
}

/// An encoded failure-record span waiting for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// The outbox row, in insertion order.
    pub id: i64,
    /// The encoded span.
    pub span: Vec<u8>,
}

/// A response of a session, as the session detectors compare it with its neighbours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTurn {
    /// The response span.
    pub span: SpanRef,
    /// When it started, in Unix nanoseconds.
    pub start_ns: i64,
    /// When it ended, in Unix nanoseconds.
    pub end_ns: i64,
    /// The fingerprint of its query.
    pub fingerprint: Option<String>,
    /// The semantic fingerprint of its query.
    pub semantic_fingerprint: Option<String>,
    /// `gen_ai.response.id`.
    pub response_id: Option<String>,
    /// `user.id`.
    pub user_id: Option<String>,
    /// Its query text, when the store keeps content.
    pub query: Option<String>,
}

/// A session's latest response, which the abandon detector judges once its window passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbandonCandidate {
    /// The session.
    pub session_id: String,
    /// The response span (`None` if the stored ids are malformed).
    pub span: Option<SpanRef>,
    /// When the response started, in Unix nanoseconds.
    pub start_ns: i64,
}

/// What to prune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneSettings {
    /// Rows older than this (Unix seconds) are past their retention time.
    pub cutoff_s: i64,
    /// The size the store may reach, in bytes. SQLite only: on PostgreSQL the store is
    /// pruned by time only.
    pub max_bytes: u64,
}

/// What one pruning run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Responses (with their content).
    pub responses: usize,
    /// Feedback rows.
    pub feedback: usize,
    /// Failure records.
    pub failures: usize,
    /// Outbox rows not yet delivered.
    pub outbox: usize,
    /// Webhook notifications not yet delivered.
    pub notifications: usize,
    /// The rows of the above deleted because the store was over its size limit (the rest
    /// were past the retention time).
    pub over_size: usize,
    /// The store's size (used pages plus the WAL) before the size passes, in bytes, when
    /// it was over the limit (0 otherwise).
    pub used_bytes: u64,
}

impl PruneReport {
    /// The rows deleted, of every kind.
    pub fn deleted(&self) -> usize {
        self.responses + self.feedback + self.failures + self.outbox + self.notifications
    }
}
