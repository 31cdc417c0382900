//! The enums of the registry the receiver reads and writes, in one place.

pub use closedloop_semconv::attribute::{
    AlertKind, AlertStatus, FailureSeverity, FailureStage, GenAiOperationName, LinkType,
    RetrievalStage, TriageStatus,
};
pub use closedloop_semconv::attribute::{
    FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource,
};
