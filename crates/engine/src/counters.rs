//! The engine's counters and the state its workers share.

use std::sync::atomic::{AtomicU64, AtomicUsize};

use tokio::sync::Notify;

use crate::breakdown::{FailureCounts, FeedbackCounts};
use crate::triage::TriageShared;

/// Counters shared by the pipeline's workers.
#[derive(Debug, Default)]
pub struct Counters {
    /// Spans accepted by ingest.
    pub spans_accepted: AtomicU64,
    /// Spans rejected by ingest.
    pub spans_rejected: AtomicU64,
    /// Feedback items recorded (new, not duplicates).
    pub feedback_recorded: AtomicU64,
    /// Failure records written.
    pub failure_records: AtomicU64,
    /// `feedback_recorded` by signal, kind and source.
    pub feedback_by: FeedbackCounts,
    /// `failure_records` by category and stage.
    pub failure_records_by: FailureCounts,
    /// Failure-record revisions delivered to the export endpoint.
    pub export_sent: AtomicU64,
    /// Outbox rows waiting for export.
    pub export_pending: AtomicUsize,
}

/// State shared by the pipeline's workers.
#[derive(Debug, Default)]
pub struct Shared {
    /// The counters.
    pub counters: Counters,
    /// Wakes the exporter when the writer adds outbox rows.
    pub export_wake: Notify,
    /// Whether an export endpoint is configured (otherwise the outbox is not filled).
    pub export_enabled: bool,
    /// Triage routing, the notification wake-up and the overdue counts.
    pub triage: TriageShared,
}
