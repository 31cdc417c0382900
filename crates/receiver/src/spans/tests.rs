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

fn read(request: &ExportTraceServiceRequest) -> Parsed {
    read_with(request, true)
}

fn read_with(request: &ExportTraceServiceRequest, store_content: bool) -> Parsed {
    let spans = SpansConfig::default();
    parse(
        request,
        ReadSettings {
            spans: &spans,
            store_content,
        },
    )
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
    let parsed = read(&request(vec![span(
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
    let parsed = read(&request(vec![span(
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
    let parsed = read(&request(vec![bad_ids, unknown, zero, fine]));
    assert_eq!((parsed.accepted, parsed.rejected), (1, 3));
    let message = parsed.error_message();
    assert!(message.starts_with("3 spans rejected"), "{message}");
    assert!(message.contains("unknown value `meh`"), "{message}");
    assert_eq!(parsed.batch.responses.len(), 1);
}

#[test]
fn feedback_without_link_or_response_id_is_rejected() {
    let parsed = read(&request(vec![span(
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
    let parsed = read(&request(vec![carrier]));
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
    let parsed = read(&request(vec![span(
        5,
        vec![
            text("openinference.span.kind", "RETRIEVER"),
            text("retrieval.documents.1.document.id", "doc-b"),
            text("retrieval.documents.0.document.id", "doc-a"),
            text("retrieval.documents.10.document.id", "doc-k"),
        ],
    )]));
    let retrieval = &parsed.batch.retrievals[0];
    assert_eq!(
        retrieval.chunk_ids.as_deref(),
        Some(&["doc-a".to_owned(), "doc-b".to_owned(), "doc-k".to_owned()][..])
    );
    assert_eq!(retrieval.stage, RetrievalStage::Retrieve);
}

fn fp(query: &str) -> String {
    closedloop_tracing::fingerprint(query).to_string()
}

fn only_response(parsed: &Parsed) -> &Response {
    assert_eq!(parsed.batch.responses.len(), 1, "{:?}", parsed.batch);
    &parsed.batch.responses[0]
}

#[test]
fn openinference_messages_give_query_and_system_template() {
    let system = "You answer from the handbook.";
    let attributes = vec![
        text("openinference.span.kind", "LLM"),
        text("llm.input_messages.0.message.role", "system"),
        text("llm.input_messages.0.message.content", system),
        text("llm.input_messages.1.message.role", "user"),
        text("llm.input_messages.1.message.content", "an older question"),
        text("llm.input_messages.2.message.role", "assistant"),
        text("llm.input_messages.2.message.content", "an answer"),
        text("llm.input_messages.3.message.role", "user"),
        text(
            "llm.input_messages.3.message.contents.1.message_content.text",
            "refunds?",
        ),
        text(
            "llm.input_messages.3.message.contents.0.message_content.text",
            "What about",
        ),
        text("llm.model_name", "gpt-4o-mini-2024-07-18"),
        text(
            "llm.invocation_parameters",
            r#"{"model": "gpt-4o-mini", "temperature": 0}"#,
        ),
        text("llm.provider", "openai"),
        text("output.value", r#"{"id": "chatcmpl-42", "choices": []}"#),
    ];
    let parsed = read_with(&request(vec![span(1, attributes.clone())]), false);
    let response = only_response(&parsed);
    let query = "What about\nrefunds?";
    assert_eq!(response.fingerprint.as_deref(), Some(fp(query).as_str()));
    assert_eq!(response.content.query.as_deref(), Some(query));
    assert!(parsed
        .batch
        .derived_queries
        .contains(&response.span.unwrap()));
    let hash = template_hash(system);
    assert_eq!(response.template.hash.as_deref(), Some(hash.as_str()));
    assert_eq!(response.template.version.as_deref(), Some(&hash[7..19]));
    assert_eq!(response.template.id, Some(format!("auto-{}", &hash[7..15])));
    // The system text is not kept: once rendered it may hold documents and user data.
    assert_eq!(response.template.text, None);
    assert_eq!(response.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(response.provider.as_deref(), Some("openai"));
    assert_eq!(response.response_id.as_deref(), Some("chatcmpl-42"));

    // Not even when the store keeps content (the templates table outlives its retention).
    let parsed = read_with(&request(vec![span(1, attributes)]), true);
    let response = only_response(&parsed);
    assert_eq!(response.template.text, None);
    assert_eq!(response.template.hash.as_deref(), Some(hash.as_str()));
}

#[test]
fn explicit_closedloop_attributes_win() {
    let parsed = read(&request(vec![span(
        1,
        vec![
            text("openinference.span.kind", "LLM"),
            text("llm.input_messages.0.message.role", "user"),
            text("llm.input_messages.0.message.content", "rendered prompt"),
            text(attr::CLOSEDLOOP_QUERY_TEXT, "the question"),
            text("prompt.id", "answer"),
            text("llm.prompt_template.template", "Answer: {q}"),
            text("llm.prompt_template.version", "v7"),
            text("llm.model_name", "gpt-4o-mini-2024-07-18"),
        ],
    )]));
    let response = only_response(&parsed);
    assert_eq!(response.content.query.as_deref(), Some("the question"));
    assert_eq!(response.fingerprint, Some(fp("the question")));
    assert!(parsed.batch.derived_queries.is_empty());
    assert_eq!(response.template.id.as_deref(), Some("answer"));
    assert_eq!(response.template.version.as_deref(), Some("v7"));
    assert_eq!(response.template.text.as_deref(), Some("Answer: {q}"));
    // The response model stands in only when no request model is named.
    assert_eq!(response.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));

    let parsed = read(&request(vec![span(
        2,
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            text(attr::GEN_AI_PROMPT_NAME, "from-genai"),
            text("prompt.id", "from-openinference"),
            text(attr::CLOSEDLOOP_QUERY_FINGERPRINT, "mh64v2:given"),
            text(
                attr::GEN_AI_INPUT_MESSAGES,
                r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#,
            ),
        ],
    )]));
    let response = only_response(&parsed);
    assert_eq!(response.template.id.as_deref(), Some("from-genai"));
    assert_eq!(response.fingerprint.as_deref(), Some("mh64v2:given"));
    assert!(parsed.batch.derived_queries.is_empty());
}

#[test]
fn genai_openllmetry_and_request_body_messages_give_the_query() {
    let genai = vec![
        text(attr::GEN_AI_OPERATION_NAME, "chat"),
        text("gen_ai.system", "openai"),
        text(
            attr::GEN_AI_INPUT_MESSAGES,
            r#"[{"role":"system","parts":[{"type":"text","content":"Be brief."}]},
                {"role":"user","parts":[{"type":"image","uri":"x"},{"type":"text","content":"Reset my password"}]}]"#,
        ),
    ];
    let openllmetry = vec![
        text("llm.request.type", "chat"),
        text("gen_ai.prompt.0.role", "system"),
        text("gen_ai.prompt.0.content", "Be brief."),
        text("gen_ai.prompt.1.role", "user"),
        text("gen_ai.prompt.1.content", "Reset my password"),
        text("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        text("gen_ai.request.model", "gpt-4o-mini"),
    ];
    let body = vec![
        text("openinference.span.kind", "LLM"),
        text(
            "input.value",
            r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Reset my password"}]}]}"#,
        ),
    ];
    let mut event_span = span(4, vec![text(attr::GEN_AI_OPERATION_NAME, "chat")]);
    event_span
        .events
        .push(opentelemetry_proto::tonic::trace::v1::span::Event {
            name: "gen_ai.user.message".into(),
            attributes: vec![text("content", "Reset my password")],
            ..Default::default()
        });
    let parsed = read(&request(vec![
        span(1, genai),
        span(2, openllmetry),
        span(3, body),
        event_span,
    ]));
    let responses = &parsed.batch.responses;
    assert_eq!(responses.len(), 4);
    for response in responses {
        assert_eq!(
            response.fingerprint,
            Some(fp("Reset my password")),
            "{response:?}"
        );
    }
    let system = template_hash("Be brief.");
    for response in &responses[..3] {
        assert_eq!(response.template.hash.as_deref(), Some(system.as_str()));
    }
    assert_eq!(responses[0].provider.as_deref(), Some("openai"));
    assert_eq!(responses[1].model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(parsed.batch.derived_queries.len(), 4);
}

#[test]
fn documents_without_ids_are_named_by_metadata_or_content() {
    let retriever = span(
        5,
        vec![
            text("openinference.span.kind", "RETRIEVER"),
            text("input.value", "How do refunds work?"),
            text(
                "retrieval.documents.0.document.content",
                "Refunds take 5 days.",
            ),
            text(
                "retrieval.documents.0.document.metadata",
                r#"{"source": "kb/refunds.md", "page": 2}"#,
            ),
            text(
                "retrieval.documents.1.document.content",
                "Plain text, no metadata.",
            ),
            text("retrieval.documents.2.document.id", "doc-c"),
            text(
                "retrieval.documents.2.document.metadata",
                r#"{"doc_id": "ignored"}"#,
            ),
            text(
                "retrieval.documents.10.document.metadata",
                r#"{"chunk_id": 17, "source": "later"}"#,
            ),
        ],
    );
    let parsed = read(&request(vec![retriever.clone()]));
    let retrieval = &parsed.batch.retrievals[0];
    assert_eq!(
        retrieval.chunk_ids.as_deref(),
        Some(
            &[
                "kb/refunds.md".to_owned(),
                derive::content_chunk_id("Plain text, no metadata."),
                "doc-c".to_owned(),
                "17".to_owned(),
            ][..]
        )
    );
    assert!(derive::content_chunk_id("x").starts_with("sha256:"));
    assert_eq!(derive::content_chunk_id("x").len(), 7 + 16);
    assert_eq!(retrieval.query.as_deref(), Some("How do refunds work?"));
    assert_eq!(retrieval.fingerprint, Some(fp("How do refunds work?")));

    // The key list is a setting.
    let spans = SpansConfig {
        chunk_id_metadata_keys: vec!["page".into()],
    };
    let parsed = parse(
        &request(vec![retriever]),
        ReadSettings {
            spans: &spans,
            store_content: false,
        },
    );
    assert_eq!(
        parsed.batch.retrievals[0].chunk_ids.as_ref().unwrap()[0],
        "2"
    );
}

#[test]
fn openllmetry_vector_db_and_retriever_spans_are_retrieval_steps() {
    let mut chroma = span(6, vec![text("db.system", "chroma")]);
    for (id, metadata, document) in [
        (Some("c-1"), None, None),
        (None, Some(r#"{"source": "kb/a.md"}"#), None),
        (None, None, Some("loose text")),
    ] {
        let mut attributes = Vec::new();
        attributes.extend(id.map(|id| text("db.query.result.id", id)));
        attributes.extend(metadata.map(|m| text("db.query.result.metadata", m)));
        attributes.extend(document.map(|d| text("db.query.result.document", d)));
        chroma
            .events
            .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                name: "db.query.result".into(),
                attributes,
                ..Default::default()
            });
    }
    let retriever = span(
        7,
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "vector_db_retrieve"),
            text(
                "traceloop.entity.input",
                r#"{"query": "How do refunds work?", "tags": null}"#,
            ),
            text(
                "traceloop.entity.output",
                r#"{"documents": [{"page_content": "Refunds take 5 days.", "metadata": {"source": "kb/refunds.md"}}, {"page_content": "Other.", "metadata": {}}], "count": 2}"#,
            ),
        ],
    );
    let other_db = span(8, vec![text("db.system", "postgresql")]);
    let parsed = read(&request(vec![chroma, retriever, other_db]));
    let retrievals = &parsed.batch.retrievals;
    assert_eq!(retrievals.len(), 2, "{retrievals:?}");
    assert_eq!(
        retrievals[0].chunk_ids,
        Some(vec![
            "c-1".to_owned(),
            "kb/a.md".to_owned(),
            derive::content_chunk_id("loose text")
        ])
    );
    assert_eq!(
        retrievals[1].chunk_ids,
        Some(vec![
            "kb/refunds.md".to_owned(),
            derive::content_chunk_id("Other.")
        ])
    );
    assert_eq!(retrievals[1].fingerprint, Some(fp("How do refunds work?")));
    assert_eq!(parsed.batch.responses.len(), 0);
}
