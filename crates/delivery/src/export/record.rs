//! What the annotation sinks read of a failure-record span: the record, its target spans and
//! its evaluation, from the span the engine built (`closedloop_engine::failure_span`).

use closedloop_semconv::attribute as attr;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;

use closedloop_engine::failure_span::EVALUATION_RESULT_EVENT;

/// One failure-record revision, as an annotation or a score says it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Evaluation {
    /// `closedloop.failure.id`: the record's stable id, the upsert key of its annotation.
    pub(crate) failure_id: String,
    /// The trace id, 32 lowercase hex digits.
    pub(crate) trace_id: String,
    /// The record span's id (revision 1, the parent of later revisions), 16 hex digits.
    pub(crate) record_span_id: String,
    /// The judged response span's id, 16 hex digits.
    pub(crate) response_span_id: String,
    /// The revision.
    pub(crate) revision: i64,
    /// The category: the annotation's label.
    pub(crate) category: String,
    /// The stage.
    pub(crate) stage: String,
    /// The severity.
    pub(crate) severity: String,
    /// The severity as a score from 0 to 1.
    pub(crate) score: f64,
    /// The summary of the decision (no content).
    pub(crate) explanation: String,
    /// The template version of the judged response, when known.
    pub(crate) template_version: Option<String>,
    /// The triage status.
    pub(crate) triage_status: String,
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value| value.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match find(attributes, key)? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

impl Evaluation {
    /// Reads a failure-record span; `None` for a span that is not one (no record id).
    pub(crate) fn from_span(span: &Span) -> Option<Evaluation> {
        let attributes = &span.attributes;
        let revision = match find(attributes, attr::CLOSEDLOOP_FAILURE_REVISION)? {
            any_value::Value::IntValue(revision) => *revision,
            _ => return None,
        };
        let event = span
            .events
            .iter()
            .find(|event| event.name == EVALUATION_RESULT_EVENT)?;
        let score = match find(&event.attributes, attr::GEN_AI_EVALUATION_SCORE_VALUE)? {
            any_value::Value::DoubleValue(score) => *score,
            _ => return None,
        };
        // Revision 1 is the record span; later revisions are its children.
        let record_span_id = if revision <= 1 {
            &span.span_id
        } else {
            &span.parent_span_id
        };
        Some(Evaluation {
            failure_id: text(attributes, attr::CLOSEDLOOP_FAILURE_ID)?,
            trace_id: hex::encode(&span.trace_id),
            record_span_id: hex::encode(record_span_id),
            response_span_id: text(attributes, attr::CLOSEDLOOP_FAILURE_RESPONSE_SPAN_ID)?,
            revision,
            category: text(attributes, attr::CLOSEDLOOP_FAILURE_CATEGORY)?,
            stage: text(attributes, attr::CLOSEDLOOP_FAILURE_STAGE)?,
            severity: text(attributes, attr::CLOSEDLOOP_FAILURE_SEVERITY)?,
            score,
            explanation: text(&event.attributes, attr::GEN_AI_EVALUATION_EXPLANATION)
                .unwrap_or_default(),
            template_version: text(attributes, attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION),
            triage_status: text(attributes, attr::CLOSEDLOOP_TRIAGE_STATUS).unwrap_or_default(),
        })
    }

    /// The span an annotation or score goes on.
    pub(crate) fn target(&self, target: AnnotationTarget) -> &str {
        match target {
            AnnotationTarget::Record => &self.record_span_id,
            AnnotationTarget::Response => &self.response_span_id,
        }
    }

    /// The metadata both sinks attach: what a filter in the backend's UI needs.
    pub(crate) fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            attr::CLOSEDLOOP_FAILURE_ID: self.failure_id,
            attr::CLOSEDLOOP_FAILURE_REVISION: self.revision,
            attr::CLOSEDLOOP_FAILURE_STAGE: self.stage,
            attr::CLOSEDLOOP_FAILURE_SEVERITY: self.severity,
            attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION: self.template_version,
            attr::CLOSEDLOOP_TRIAGE_STATUS: self.triage_status,
        })
    }
}

/// Which span an annotation sink annotates.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationTarget {
    /// The failure-record span (revision 1): needs the records exported to the same backend
    /// over OTLP.
    #[default]
    Record,
    /// The judged response span: needs the application's traces in that backend.
    Response,
}
