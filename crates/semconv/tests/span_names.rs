//! The span-name helpers follow the registry's templates and drop empty parts.

use closedloop_semconv::attribute::{FailureCategory, FeedbackSignal, RetrievalStage};
use closedloop_semconv::span::{self, SpanKind};

#[test]
fn generation_names_follow_the_genai_conventions() {
    assert_eq!(span::generation_name("chat", "gpt-4o"), "chat gpt-4o");
    assert_eq!(span::generation_name("chat", ""), "chat");
    assert_eq!(span::generation_name("", "gpt-4o"), "gpt-4o");
    assert_eq!(span::generation_name("", ""), "");
    assert_eq!(
        span::GENERATION_NAME_TEMPLATE,
        "{gen_ai.operation.name} {gen_ai.request.model}"
    );
}

#[test]
fn retrieval_and_embedding_names_have_a_fixed_first_word() {
    assert_eq!(
        span::retrieval_name("product-docs"),
        "retrieval product-docs"
    );
    assert_eq!(span::retrieval_name(""), "retrieval");
    assert_eq!(
        span::embedding_name("text-embedding-3-small"),
        "embeddings text-embedding-3-small"
    );
    assert_eq!(span::embedding_name(""), "embeddings");
}

#[test]
fn rerank_names_start_with_the_stage() {
    assert_eq!(
        span::rerank_name(RetrievalStage::Rerank.as_str(), "product-docs"),
        "rerank product-docs"
    );
    assert_eq!(
        span::rerank_name(RetrievalStage::Filter.as_str(), ""),
        "filter"
    );
}

#[test]
fn feedback_and_failure_record_names_carry_the_value() {
    assert_eq!(
        span::feedback_name(FeedbackSignal::ThumbsDown.as_str()),
        "feedback thumbs_down"
    );
    assert_eq!(
        span::failure_record_name(FailureCategory::Hallucination.as_str()),
        "failure_record hallucination"
    );
    assert_eq!(span::failure_record_name(""), "failure_record");
}

#[test]
fn span_kinds_match_the_registry() {
    assert_eq!(span::GENERATION_SPAN_KIND, SpanKind::Client);
    assert_eq!(span::RETRIEVAL_SPAN_KIND, SpanKind::Client);
    assert_eq!(span::EMBEDDING_SPAN_KIND, SpanKind::Client);
    assert_eq!(span::RERANK_SPAN_KIND, SpanKind::Internal);
    assert_eq!(span::FEEDBACK_SPAN_KIND, SpanKind::Internal);
    assert_eq!(span::FAILURE_RECORD_SPAN_KIND, SpanKind::Internal);
    assert_eq!(SpanKind::Client.as_str(), "client");
}
