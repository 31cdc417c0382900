//! The failure-record span: one per record revision, in the judged response's trace.
//!
//! Revision 1 is the record span, a child of the judged span, with a span id derived from the
//! record alone ([`record_span_id`]). Each later revision is a child of the record span, with
//! a span id derived from the record and the revision, so a trace view shows one record with
//! its history, and a revision exported twice is the same span. (A backend keeps the first
//! copy of a span id: Phoenix inserts spans `ON CONFLICT DO NOTHING`, Tempo deduplicates by
//! span id, so re-exporting one span id per record would hide every later revision.)

use closedloop_semconv::attribute as attr;
use closedloop_semconv::attribute::{FailureSeverity, OpeninferenceSpanKind};
use closedloop_semconv::span::{failure_record_name, failure_revision_name};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::records::{Response, SpanRef};
use crate::rules::Decision;
use crate::timefmt::format_rfc3339;
use crate::triage::Assignment;
use crate::vocab::LinkType;

/// One revision of a failure record, as the exporter needs it.
#[derive(Debug)]
pub struct FailureSpan<'a> {
    /// The judged response span: the record's key and the failure span's parent.
    pub key: SpanRef,
    /// The record's revision (1 for the first, one more for each change).
    pub revision: i64,
    /// The failure rules' decision.
    pub decision: &'a Decision,
    /// How many feedback items judge the response.
    pub feedback_count: usize,
    /// Whether the record carries what the response was made of (the response was seen).
    pub enriched: bool,
    /// The judged response, when it was seen.
    pub response: Option<&'a Response>,
    /// The feedback spans that contributed (feedback from the API has none).
    pub feedback_spans: &'a [SpanRef],
    /// When the latest feedback was given.
    pub time_unix_nano: u64,
    /// The record's owner, status and due time.
    pub triage: &'a Assignment,
}

/// The record's stable id: one per failing response.
pub fn failure_id(key: SpanRef) -> String {
    format!(
        "fr_{}_{}",
        hex::encode(key.trace_id),
        hex::encode(key.span_id)
    )
}

/// The name of the OpenTelemetry GenAI evaluation event (`event.gen_ai.evaluation.result` in
/// the registry) each failure-record span carries.
pub const EVALUATION_RESULT_EVENT: &str = "gen_ai.evaluation.result";

/// The `gen_ai.evaluation.name` of the evaluation event, and the name of the annotation or
/// score the annotation sinks write.
pub const EVALUATION_NAME: &str = "closedloop.failure";

/// The span id of the record span (revision 1), the parent of every later revision.
pub fn record_span_id(key: SpanRef) -> [u8; 8] {
    revision_span_id(key, 1)
}

/// A severity as an evaluation score between 0 and 1: low 0.25, medium 0.5, high 0.75,
/// critical 1.
pub fn severity_score(severity: FailureSeverity) -> f64 {
    match severity {
        FailureSeverity::Low => 0.25,
        FailureSeverity::Medium => 0.5,
        FailureSeverity::High => 0.75,
        FailureSeverity::Critical => 1.0,
        _ => 0.5,
    }
}

/// The evaluation's explanation: the record's decision in words, from its category, stage,
/// severity, signals and feedback count only (no content).
fn explanation(record: &FailureSpan<'_>) -> String {
    let decision = record.decision;
    let signals: Vec<&str> = decision
        .signals
        .iter()
        .map(|signal| signal.as_str())
        .collect();
    format!(
        "{} at the {} stage, severity {}: {} feedback ({}); revision {}, triage {}",
        decision.category.as_str(),
        decision.stage.as_str(),
        decision.severity.as_str(),
        record.feedback_count,
        signals.join(", "),
        record.revision,
        record.triage.status.as_str(),
    )
}

/// The span id of a revision: derived from the record and revision, so the same revision
/// exported twice (after a crash) is the same span and backends can deduplicate it.
fn revision_span_id(key: SpanRef, revision: i64) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(key.trace_id)
        .chain_update(key.span_id)
        .chain_update(revision.to_be_bytes())
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    value_kv(key, any_value::Value::StringValue(value.into()))
}

fn value_kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn strings<'s>(key: &str, values: impl IntoIterator<Item = &'s str>) -> KeyValue {
    value_kv(
        key,
        any_value::Value::ArrayValue(ArrayValue {
            values: values
                .into_iter()
                .map(|value| AnyValue {
                    value: Some(any_value::Value::StringValue(value.to_owned())),
                })
                .collect(),
        }),
    )
}

fn link(span: SpanRef, link_type: LinkType) -> Link {
    Link {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        attributes: vec![string(attr::CLOSEDLOOP_LINK_TYPE, link_type.as_str())],
        ..Default::default()
    }
}

/// Builds the span of one failure-record revision, encoded as protobuf for the outbox.
pub fn failure_span(record: &FailureSpan<'_>) -> Vec<u8> {
    build(record).encode_to_vec()
}

/// The OTLP span of one failure-record revision.
pub fn build(record: &FailureSpan<'_>) -> Span {
    let decision = record.decision;
    let mut attributes = vec![
        string(attr::CLOSEDLOOP_FAILURE_ID, failure_id(record.key)),
        string(
            attr::CLOSEDLOOP_FAILURE_CATEGORY,
            decision.category.as_str(),
        ),
        string(attr::CLOSEDLOOP_FAILURE_STAGE, decision.stage.as_str()),
        string(
            attr::CLOSEDLOOP_FAILURE_SEVERITY,
            decision.severity.as_str(),
        ),
        string(
            attr::OPENINFERENCE_SPAN_KIND,
            OpeninferenceSpanKind::Evaluator.as_str(),
        ),
        strings(
            attr::CLOSEDLOOP_FAILURE_SIGNALS,
            decision.signals.iter().map(|signal| signal.as_str()),
        ),
        value_kv(
            attr::CLOSEDLOOP_FAILURE_FEEDBACK_COUNT,
            any_value::Value::IntValue(record.feedback_count as i64),
        ),
        value_kv(
            attr::CLOSEDLOOP_FAILURE_REVISION,
            any_value::Value::IntValue(record.revision),
        ),
        value_kv(
            attr::CLOSEDLOOP_FAILURE_ENRICHED,
            any_value::Value::BoolValue(record.enriched),
        ),
        string(
            attr::CLOSEDLOOP_FAILURE_RESPONSE_SPAN_ID,
            hex::encode(record.key.span_id),
        ),
        string(
            attr::CLOSEDLOOP_TRIAGE_STATUS,
            record.triage.status.as_str(),
        ),
    ];
    if let Some(owner) = &record.triage.owner {
        attributes.push(string(attr::CLOSEDLOOP_TRIAGE_OWNER, owner.as_str()));
    }
    if let Some(due_s) = record.triage.due_s {
        attributes.push(string(
            attr::CLOSEDLOOP_TRIAGE_DUE_TIME,
            format_rfc3339(due_s),
        ));
    }
    if let Some(response) = record.response {
        let optional = [
            (attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID, &response.template.id),
            (
                attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
                &response.template.version,
            ),
            (
                attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH,
                &response.template.hash,
            ),
            // Under closedloop's names: `gen_ai.*` model keys make backends take the record
            // for a model call.
            (attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL, &response.model),
            (
                attr::CLOSEDLOOP_FAILURE_RESPONSE_PROVIDER,
                &response.provider,
            ),
            (attr::CLOSEDLOOP_FAILURE_RESPONSE_ID, &response.response_id),
            (
                attr::CLOSEDLOOP_FAILURE_RESPONSE_DATA_SOURCE,
                &response.data_source,
            ),
            (
                attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION,
                &response.index_version,
            ),
            (attr::SESSION_ID, &response.session_id),
            (attr::USER_ID, &response.user_id),
            (attr::CLOSEDLOOP_QUERY_FINGERPRINT, &response.fingerprint),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                attributes.push(string(key, value.as_str()));
            }
        }
        if let Some(chunks) = &response.chunk_ids {
            attributes.push(strings(
                attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS,
                chunks.iter().map(String::as_str),
            ));
        }
    }
    let mut links = Vec::with_capacity(1 + record.feedback_spans.len());
    links.push(link(record.key, LinkType::JudgedResponse));
    links.extend(
        record
            .feedback_spans
            .iter()
            .map(|&span| link(span, LinkType::Feedback)),
    );
    let mut event = vec![
        string(attr::GEN_AI_EVALUATION_NAME, EVALUATION_NAME),
        value_kv(
            attr::GEN_AI_EVALUATION_SCORE_VALUE,
            any_value::Value::DoubleValue(severity_score(decision.severity)),
        ),
        string(
            attr::GEN_AI_EVALUATION_SCORE_LABEL,
            decision.category.as_str(),
        ),
        string(attr::GEN_AI_EVALUATION_EXPLANATION, explanation(record)),
    ];
    if let Some(response_id) = record.response.and_then(|r| r.response_id.as_deref()) {
        event.push(string(attr::GEN_AI_RESPONSE_ID, response_id));
    }
    // Revision 1 is the record span, under the judged span; later revisions are its children.
    let (parent_span_id, name) = if record.revision <= 1 {
        (
            record.key.span_id,
            failure_record_name(decision.category.as_str()),
        )
    } else {
        (
            record_span_id(record.key),
            failure_revision_name(decision.category.as_str()),
        )
    };
    Span {
        trace_id: record.key.trace_id.to_vec(),
        span_id: revision_span_id(record.key, record.revision).to_vec(),
        parent_span_id: parent_span_id.to_vec(),
        name,
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: record.time_unix_nano,
        end_time_unix_nano: record.time_unix_nano,
        attributes,
        events: vec![Event {
            time_unix_nano: record.time_unix_nano,
            name: EVALUATION_RESULT_EVENT.to_owned(),
            attributes: event,
            ..Default::default()
        }],
        links,
        ..Default::default()
    }
}
