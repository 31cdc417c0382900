use closedloop_semconv::attribute as attr;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::*;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span(span_id: u8, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![span_id; 8],
        name: "span".into(),
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        attributes,
        ..Default::default()
    }
}

#[test]
fn generation_span_is_indexed() {
    let parsed = parse(&request(vec![span(
        1,
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o"),
            text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID, "answer"),
            text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION, "v3"),
            kv(
                attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS,
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("kb#1".into())),
                    }],
                }),
            ),
            kv(attr::GEN_AI_REQUEST_TEMPERATURE, Value::DoubleValue(0.2)),
        ],
    )]));
    assert_eq!((parsed.accepted, parsed.rejected), (1, 0));
    let response = &parsed.batch.responses[0];
    assert_eq!(response.model.as_deref(), Some("gpt-4o"));
    assert_eq!(response.template.version.as_deref(), Some("v3"));
    assert_eq!(response.chunk_ids, Some(vec!["kb#1".to_owned()]));
    assert_eq!(
        response.parameters.as_deref(),
        Some(r#"{"gen_ai.request.temperature":0.2}"#)
    );
}

#[test]
fn openinference_template_text_yields_hash_and_version() {
    let template = "Answer: {question}";
    let parsed = parse(&request(vec![span(
        1,
        vec![
            text("openinference.span.kind", "LLM"),
            text("llm.prompt_template.template", template),
            text("llm.model_name", "gpt-4o-mini"),
        ],
    )]));
    let response = &parsed.batch.responses[0];
    let hash = template_hash(template);
    assert_eq!(response.template.hash.as_deref(), Some(hash.as_str()));
    assert_eq!(
        response.template.version.as_deref(),
        Some(&hash["sha256:".len().."sha256:".len() + 12])
    );
    assert_eq!(response.model.as_deref(), Some("gpt-4o-mini"));
}

#[test]
fn invalid_ids_and_unknown_enums_are_rejected() {
    let mut bad_ids = span(1, vec![text(attr::GEN_AI_OPERATION_NAME, "chat")]);
    bad_ids.trace_id = vec![1; 3];
    let mut unknown = span(2, vec![text(attr::CLOSEDLOOP_FEEDBACK_SIGNAL, "meh")]);
    unknown.links.push(Link {
        trace_id: vec![7; 16],
        span_id: vec![1; 8],
        ..Default::default()
    });
    let zero = Span {
        span_id: vec![0; 8],
        ..span(3, vec![])
    };
    let fine = span(4, vec![text(attr::GEN_AI_OPERATION_NAME, "chat")]);
    let parsed = parse(&request(vec![bad_ids, unknown, zero, fine]));
    assert_eq!((parsed.accepted, parsed.rejected), (1, 3));
    let message = parsed.error_message();
    assert!(message.starts_with("3 spans rejected"), "{message}");
    assert!(message.contains("unknown value `meh`"), "{message}");
    assert_eq!(parsed.batch.responses.len(), 1);
}

#[test]
fn feedback_without_link_or_response_id_is_rejected() {
    let parsed = parse(&request(vec![span(
        2,
        vec![text(attr::CLOSEDLOOP_FEEDBACK_SIGNAL, "thumbs_down")],
    )]));
    assert_eq!(parsed.rejected, 1);
}

#[test]
fn annotation_carrier_span_becomes_feedback() {
    let mut carrier = span(
        9,
        vec![
            text("annotations.0.annotation.name", "correctness"),
            text("annotations.0.annotation.label", "incorrect"),
            text("annotations.0.annotation.annotator_kind", "HUMAN"),
            text("annotations.1.annotation.name", "helpfulness"),
            kv("annotations.1.annotation.score", Value::DoubleValue(0.9)),
            text("annotations.2.annotation.name", "tone"),
            text("annotations.2.annotation.label", "formal"),
        ],
    );
    carrier.links.push(Link {
        trace_id: vec![7; 16],
        span_id: vec![1; 8],
        ..Default::default()
    });
    let parsed = parse(&request(vec![carrier]));
    assert_eq!(parsed.accepted, 1);
    let feedback = &parsed.batch.feedback;
    assert_eq!(feedback.len(), 2, "{feedback:?}");
    assert_eq!(feedback[0].signal, FeedbackSignal::ThumbsDown);
    assert_eq!(feedback[0].source, FeedbackSource::User);
    assert_eq!(feedback[1].signal, FeedbackSignal::Rating);
    assert_eq!(feedback[1].value, Some(0.9));
    assert_ne!(feedback[0].feedback_id, feedback[1].feedback_id);
}

#[test]
fn retriever_documents_are_read_in_index_order() {
    let parsed = parse(&request(vec![span(
        5,
        vec![
            text("openinference.span.kind", "RETRIEVER"),
            text("retrieval.documents.1.document.id", "doc-b"),
            text("retrieval.documents.0.document.id", "doc-a"),
            text("retrieval.documents.10.document.id", "doc-k"),
        ],
    )]));
    let retrieval = &parsed.batch.retrievals[0];
    assert_eq!(retrieval.chunk_ids, vec!["doc-a", "doc-b", "doc-k"]);
    assert_eq!(retrieval.stage, RetrievalStage::Retrieve);
}
