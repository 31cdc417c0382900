//! The feedback API: feedback spans in the judged response's trace.

use closedloop_semconv::attribute::{
    FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource, LinkType,
    CLOSEDLOOP_FAILURE_CATEGORY, CLOSEDLOOP_FEEDBACK_COMMENT, CLOSEDLOOP_FEEDBACK_ID,
    CLOSEDLOOP_FEEDBACK_KIND, CLOSEDLOOP_FEEDBACK_SIGNAL, CLOSEDLOOP_FEEDBACK_SOURCE,
    CLOSEDLOOP_FEEDBACK_VALUE, CLOSEDLOOP_LINK_TYPE, GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME, GEN_AI_EVALUATION_SCORE_LABEL, GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_RESPONSE_ID, SESSION_ID, USER_ID,
};
use closedloop_semconv::span as span_name;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{Link, Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

use crate::content::{ContentKind, ContentPolicy};
use crate::layer::ClosedloopLayer;
use crate::ResponseRef;

/// The prefix of `gen_ai.evaluation.name` on feedback spans, followed by the signal.
const EVALUATION_NAME_PREFIX: &str = "closedloop.feedback.";

/// One piece of feedback about one response.
///
/// Only the signal is required. The kind defaults from the signal (thumbs, rating, escalate,
/// report and label are explicit; regenerate, rephrase, edit, copy and abandon implicit), the
/// value from the signal where it is implied (thumbs up and copy 1.0; thumbs down, regenerate,
/// rephrase, abandon, escalate and report 0.0), and the source from the signal (user, `app` for
/// regenerate, edit and copy, `detector` for rephrase and abandon, `reviewer` for label).
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    signal: FeedbackSignal,
    kind: Option<FeedbackKind>,
    value: Option<f64>,
    category: Option<FailureCategory>,
    comment: Option<String>,
    source: Option<FeedbackSource>,
    id: Option<String>,
    response_id: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
}

impl Feedback {
    /// Feedback with this signal.
    pub fn new(signal: FeedbackSignal) -> Self {
        Feedback {
            signal,
            kind: None,
            value: None,
            category: None,
            comment: None,
            source: None,
            id: None,
            response_id: None,
            session_id: None,
            user_id: None,
        }
    }

    /// Overrides the kind derived from the signal.
    pub fn with_kind(mut self, kind: FeedbackKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The score from 0.0 (worst) to 1.0 (best); [`record`](FeedbackRecorder::record) refuses
    /// other values.
    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// The failure category the user or reviewer named.
    pub fn with_category(mut self, category: FailureCategory) -> Self {
        self.category = Some(category);
        self
    }

    /// Free text; exported only when comment capture is on, after the redaction hook.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Overrides the source derived from the signal.
    pub fn with_source(mut self, source: FeedbackSource) -> Self {
        self.source = Some(source);
        self
    }

    /// An idempotency id: the receiver counts feedback with a repeated id once.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The `gen_ai.response.id` of the judged response, the receiver's fallback join key.
    pub fn with_response_id(mut self, id: impl Into<String>) -> Self {
        self.response_id = Some(id.into());
        self
    }

    /// The session the feedback was given in.
    pub fn with_session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// The user who gave the feedback; hashed when the content policy hashes user IDs.
    pub fn with_user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// The signal.
    pub fn signal(&self) -> FeedbackSignal {
        self.signal
    }

    /// The kind: as set, or derived from the signal.
    pub fn kind(&self) -> FeedbackKind {
        self.kind.unwrap_or(match self.signal {
            FeedbackSignal::Regenerate
            | FeedbackSignal::Rephrase
            | FeedbackSignal::Edit
            | FeedbackSignal::Copy
            | FeedbackSignal::Abandon => FeedbackKind::Implicit,
            _ => FeedbackKind::Explicit,
        })
    }

    /// The value: as set, or implied by the signal.
    pub fn value(&self) -> Option<f64> {
        self.value.or(match self.signal {
            FeedbackSignal::ThumbsUp | FeedbackSignal::Copy => Some(1.0),
            FeedbackSignal::ThumbsDown
            | FeedbackSignal::Regenerate
            | FeedbackSignal::Rephrase
            | FeedbackSignal::Abandon
            | FeedbackSignal::Escalate
            | FeedbackSignal::Report => Some(0.0),
            _ => None,
        })
    }

    /// The source: as set, or derived from the signal.
    pub fn source(&self) -> FeedbackSource {
        self.source.unwrap_or(match self.signal {
            FeedbackSignal::Regenerate | FeedbackSignal::Edit | FeedbackSignal::Copy => {
                FeedbackSource::App
            }
            FeedbackSignal::Rephrase | FeedbackSignal::Abandon => FeedbackSource::Detector,
            FeedbackSignal::Label => FeedbackSource::Reviewer,
            _ => FeedbackSource::User,
        })
    }

    /// `pass` for values of 0.5 and above, `fail` below, `neutral` without a value.
    fn label(&self) -> &'static str {
        match self.value() {
            Some(v) if v >= 0.5 => "pass",
            Some(_) => "fail",
            None => "neutral",
        }
    }
}

/// Why feedback was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedbackError {
    /// The value is not a number from 0.0 to 1.0.
    #[error("feedback value {0} is not between 0.0 and 1.0")]
    ValueOutOfRange(f64),
}

/// Emits feedback spans through a tracer provider.
///
/// Each feedback span is a child of the judged response's span context (as a remote parent,
/// so it lands in the same trace and is sampled with it under a parent-based sampler) and has
/// exactly one link, to the judged span, with `closedloop.link.type` = `judged_response`. The
/// judged span need not be alive, or even in this process.
#[derive(Debug)]
pub struct FeedbackRecorder<T = BoxedTracer> {
    tracer: T,
    policy: ContentPolicy,
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl FeedbackRecorder<BoxedTracer> {
    /// A recorder using the global tracer provider and the content policy of the
    /// [`ClosedloopLayer`] in the current dispatcher (no content capture if there is none).
    pub fn global() -> Self {
        let policy = tracing::dispatcher::get_default(|dispatch| {
            ClosedloopLayer::find(dispatch)
                .map(ClosedloopLayer::content_policy)
                .unwrap_or_default()
        });
        FeedbackRecorder {
            tracer: opentelemetry::global::tracer_provider().tracer_with_scope(scope()),
            policy,
        }
    }
}

impl<T> FeedbackRecorder<T>
where
    T: Tracer,
{
    /// A recorder using `provider`, with no content capture.
    pub fn new<P>(provider: &P) -> Self
    where
        P: TracerProvider<Tracer = T>,
    {
        FeedbackRecorder {
            tracer: provider.tracer_with_scope(scope()),
            policy: ContentPolicy::default(),
        }
    }

    /// Uses `policy` for comment capture, redaction and user-ID hashing; usually
    /// [`ClosedloopLayer::content_policy`].
    pub fn with_content_policy(mut self, policy: ContentPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Emits one feedback span about `response`.
    pub fn record(&self, response: &ResponseRef, feedback: Feedback) -> Result<(), FeedbackError> {
        if let Some(v) = feedback.value {
            if !(0.0..=1.0).contains(&v) {
                return Err(FeedbackError::ValueOutOfRange(v));
            }
        }
        let signal = feedback.signal.as_str();
        let mut attributes = vec![
            KeyValue::new(CLOSEDLOOP_FEEDBACK_SIGNAL, signal),
            KeyValue::new(CLOSEDLOOP_FEEDBACK_KIND, feedback.kind().as_str()),
            KeyValue::new(CLOSEDLOOP_FEEDBACK_SOURCE, feedback.source().as_str()),
            KeyValue::new(
                GEN_AI_EVALUATION_NAME,
                format!("{EVALUATION_NAME_PREFIX}{signal}"),
            ),
            KeyValue::new(GEN_AI_EVALUATION_SCORE_LABEL, feedback.label()),
        ];
        if let Some(value) = feedback.value() {
            attributes.push(KeyValue::new(CLOSEDLOOP_FEEDBACK_VALUE, value));
            attributes.push(KeyValue::new(GEN_AI_EVALUATION_SCORE_VALUE, value));
        }
        if let Some(category) = feedback.category {
            attributes.push(KeyValue::new(
                CLOSEDLOOP_FAILURE_CATEGORY,
                category.as_str(),
            ));
        }
        if let Some(id) = &feedback.id {
            attributes.push(KeyValue::new(CLOSEDLOOP_FEEDBACK_ID, id.clone()));
        }
        if let Some(id) = &feedback.response_id {
            attributes.push(KeyValue::new(GEN_AI_RESPONSE_ID, id.clone()));
        }
        if let Some(id) = &feedback.session_id {
            attributes.push(KeyValue::new(SESSION_ID, id.clone()));
        }
        if let Some(id) = &feedback.user_id {
            attributes.push(KeyValue::new(USER_ID, self.policy.user_id(id)));
        }
        if let Some(comment) = feedback
            .comment
            .as_deref()
            .and_then(|c| self.policy.capture(ContentKind::Comment, c))
        {
            attributes.push(KeyValue::new(
                CLOSEDLOOP_FEEDBACK_COMMENT,
                comment.clone().into_owned(),
            ));
            attributes.push(KeyValue::new(
                GEN_AI_EVALUATION_EXPLANATION,
                comment.into_owned(),
            ));
        }

        let judged = response.span_context();
        let parent = Context::new().with_remote_span_context(judged.clone());
        let link = Link::new(
            judged,
            vec![KeyValue::new(
                CLOSEDLOOP_LINK_TYPE,
                LinkType::JudgedResponse.as_str(),
            )],
            0,
        );
        let mut span = self
            .tracer
            .span_builder(span_name::feedback_name(signal))
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .with_links(vec![link])
            .start_with_context(&self.tracer, &parent);
        span.end();
        Ok(())
    }
}

/// Records feedback about `response` through the global tracer provider; see
/// [`FeedbackRecorder`].
///
/// # Examples
///
/// ```
/// use closedloop_semconv::attribute::{FailureCategory, FeedbackSignal};
/// use closedloop_tracing::{record_feedback, Feedback, ResponseRef};
///
/// # fn handler(response: ResponseRef) -> Result<(), closedloop_tracing::FeedbackError> {
/// record_feedback(
///     &response,
///     Feedback::new(FeedbackSignal::ThumbsDown)
///         .with_category(FailureCategory::Hallucination)
///         .with_comment("It quoted the old refund policy.")
///         .with_id("fb_01JD8Z6K2Q3M4N5P6R7S8T9V0W"),
/// )?;
/// # Ok(())
/// # }
/// ```
pub fn record_feedback(response: &ResponseRef, feedback: Feedback) -> Result<(), FeedbackError> {
    FeedbackRecorder::global().record(response, feedback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_value_source_and_label_derive_from_the_signal() {
        let down = Feedback::new(FeedbackSignal::ThumbsDown);
        assert_eq!(down.kind(), FeedbackKind::Explicit);
        assert_eq!(down.value(), Some(0.0));
        assert_eq!(down.source(), FeedbackSource::User);
        assert_eq!(down.label(), "fail");

        let rephrase = Feedback::new(FeedbackSignal::Rephrase);
        assert_eq!(rephrase.kind(), FeedbackKind::Implicit);
        assert_eq!(rephrase.source(), FeedbackSource::Detector);

        let rating = Feedback::new(FeedbackSignal::Rating);
        assert_eq!(rating.value(), None);
        assert_eq!(rating.label(), "neutral");
        assert_eq!(rating.with_value(0.75).label(), "pass");

        let overridden = Feedback::new(FeedbackSignal::Copy)
            .with_kind(FeedbackKind::Explicit)
            .with_source(FeedbackSource::User);
        assert_eq!(overridden.kind(), FeedbackKind::Explicit);
        assert_eq!(overridden.source(), FeedbackSource::User);
    }
}
