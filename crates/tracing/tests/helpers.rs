//! The span helpers write semantic-convention names, kinds and typed attributes.

mod support;

use closedloop_semconv::attribute::{
    GenAiOperationName, CLOSEDLOOP_RETRIEVAL_STAGE, CLOSEDLOOP_RETRIEVAL_TOP_K,
    GEN_AI_EMBEDDINGS_DIMENSION_COUNT, GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS, GEN_AI_REQUEST_MODEL, GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_TEMPERATURE, GEN_AI_REQUEST_TOP_K, GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID, GEN_AI_RESPONSE_MODEL, GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS,
};
use closedloop_tracing::{embedding, generation, rerank, ClosedloopLayer};
use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use support::{attr, attr_str, attr_strings, harness, BOTH_ORDERS};

#[test]
fn generation_spans_carry_model_parameters_response_and_usage() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        h.run(|| {
            let llm = generation(GenAiOperationName::Chat, "gpt-4o")
                .with_provider("openai")
                .with_max_tokens(256)
                .with_temperature(0.2)
                .with_top_k(40.0)
                .with_stop_sequences(["\n\n", "END"])
                .start();
            llm.span().in_scope(|| {
                llm.record_response("chatcmpl-1", "gpt-4o-2024-08-06");
                llm.record_finish_reasons(&["stop"]);
                llm.record_usage(812, 64);
                llm.record_cache_read_tokens(512);
            });
        });
        let gen = h.span("chat gpt-4o");
        assert_eq!(gen.span_kind, SpanKind::Client);
        assert_eq!(
            attr_str(&gen, GEN_AI_OPERATION_NAME).as_deref(),
            Some("chat")
        );
        assert_eq!(
            attr_str(&gen, GEN_AI_PROVIDER_NAME).as_deref(),
            Some("openai")
        );
        assert_eq!(
            attr_str(&gen, GEN_AI_REQUEST_MODEL).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(attr(&gen, GEN_AI_REQUEST_MAX_TOKENS), Some(Value::I64(256)));
        assert_eq!(
            attr(&gen, GEN_AI_REQUEST_TEMPERATURE),
            Some(Value::F64(0.2))
        );
        assert_eq!(attr(&gen, GEN_AI_REQUEST_TOP_K), Some(Value::F64(40.0)));
        assert_eq!(
            attr_strings(&gen, GEN_AI_REQUEST_STOP_SEQUENCES).unwrap(),
            ["\n\n", "END"]
        );
        assert_eq!(
            attr_str(&gen, GEN_AI_RESPONSE_ID).as_deref(),
            Some("chatcmpl-1")
        );
        assert_eq!(
            attr_str(&gen, GEN_AI_RESPONSE_MODEL).as_deref(),
            Some("gpt-4o-2024-08-06")
        );
        assert_eq!(
            attr_strings(&gen, GEN_AI_RESPONSE_FINISH_REASONS).unwrap(),
            ["stop"]
        );
        assert_eq!(attr(&gen, GEN_AI_USAGE_INPUT_TOKENS), Some(Value::I64(812)));
        assert_eq!(attr(&gen, GEN_AI_USAGE_OUTPUT_TOKENS), Some(Value::I64(64)));
        assert_eq!(
            attr(&gen, GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            Some(Value::I64(512))
        );
    }
}

#[test]
fn rerank_and_embedding_spans_are_named_and_kinded() {
    let h = harness(support::Order::OtelFirst, ClosedloopLayer::new());
    h.run(|| {
        rerank("kb").with_top_k(3).start().span().in_scope(|| {});
        embedding("text-embedding-3-small")
            .with_provider("openai")
            .with_dimension_count(1536)
            .start()
            .in_scope(|| {});
    });
    let rr = h.span("rerank kb");
    assert_eq!(rr.span_kind, SpanKind::Internal);
    assert_eq!(
        attr_str(&rr, CLOSEDLOOP_RETRIEVAL_STAGE).as_deref(),
        Some("rerank")
    );
    assert_eq!(attr(&rr, CLOSEDLOOP_RETRIEVAL_TOP_K), Some(Value::I64(3)));
    assert_eq!(attr(&rr, GEN_AI_OPERATION_NAME), None);
    let emb = h.span("embeddings text-embedding-3-small");
    assert_eq!(emb.span_kind, SpanKind::Client);
    assert_eq!(
        attr_str(&emb, GEN_AI_OPERATION_NAME).as_deref(),
        Some("embeddings")
    );
    assert_eq!(
        attr(&emb, GEN_AI_EMBEDDINGS_DIMENSION_COUNT),
        Some(Value::I64(1536))
    );
}
