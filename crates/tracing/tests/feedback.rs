//! Feedback spans live in the judged response's trace and link to it exactly once.

mod support;

use std::time::{Duration, SystemTime};

use closedloop_semconv::attribute::{
    FailureCategory, FeedbackSignal, GenAiOperationName, CLOSEDLOOP_FAILURE_CATEGORY,
    CLOSEDLOOP_FEEDBACK_COMMENT, CLOSEDLOOP_FEEDBACK_ID, CLOSEDLOOP_FEEDBACK_KIND,
    CLOSEDLOOP_FEEDBACK_SIGNAL, CLOSEDLOOP_FEEDBACK_SOURCE, CLOSEDLOOP_FEEDBACK_VALUE,
    CLOSEDLOOP_LINK_TYPE, GEN_AI_EVALUATION_EXPLANATION, GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL, GEN_AI_EVALUATION_SCORE_VALUE,
};
use closedloop_tracing::{
    generation, record_feedback, verify_feedback_token, ClosedloopLayer, ContentKind, Feedback,
    FeedbackError, FeedbackRecorder, ResponseRef,
};
use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::{attr, attr_str, harness, Order, BOTH_ORDERS};

const SECRET: &[u8] = b"feedback-secret-feedback-secret!";

/// Produces one answer and returns its reference, after the span has ended.
fn answer(h: &support::Harness) -> ResponseRef {
    h.run(|| {
        let llm = generation(GenAiOperationName::Chat, "gpt-4o").start();
        let from_helper = llm.response_ref().unwrap();
        let current = llm.span().in_scope(|| {
            let child = tracing::info_span!("parse output");
            child.in_scope(ResponseRef::current)
        });
        assert_eq!(current.as_ref(), Some(&from_helper));
        from_helper
    })
}

#[test]
fn a_feedback_span_shares_the_trace_and_links_once_to_the_response() {
    for order in BOTH_ORDERS {
        let h = harness(order, ClosedloopLayer::new());
        let response = answer(&h);
        let judged = h.span("chat gpt-4o");
        assert_eq!(response.span_id(), judged.span_context.span_id());

        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        FeedbackRecorder::new(&provider)
            .record(
                &response,
                Feedback::new(FeedbackSignal::ThumbsDown)
                    .with_category(FailureCategory::Hallucination)
                    .with_comment("It quoted the old policy.")
                    .with_id("fb-1"),
            )
            .unwrap();

        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        let fb = &spans[0];
        assert_eq!(fb.name, "feedback thumbs_down");
        assert_eq!(fb.span_kind, SpanKind::Internal);
        assert_eq!(fb.span_context.trace_id(), judged.span_context.trace_id());
        assert_eq!(fb.parent_span_id, judged.span_context.span_id());
        assert_eq!(fb.links.links.len(), 1);
        let link = &fb.links.links[0];
        assert_eq!(link.span_context.trace_id(), judged.span_context.trace_id());
        assert_eq!(link.span_context.span_id(), judged.span_context.span_id());
        assert_eq!(
            link.attributes
                .iter()
                .find(|kv| kv.key.as_str() == CLOSEDLOOP_LINK_TYPE)
                .map(|kv| kv.value.as_str().into_owned())
                .as_deref(),
            Some("judged_response")
        );

        assert_eq!(
            attr_str(fb, CLOSEDLOOP_FEEDBACK_SIGNAL).as_deref(),
            Some("thumbs_down")
        );
        assert_eq!(
            attr_str(fb, CLOSEDLOOP_FEEDBACK_KIND).as_deref(),
            Some("explicit")
        );
        assert_eq!(
            attr_str(fb, CLOSEDLOOP_FEEDBACK_SOURCE).as_deref(),
            Some("user")
        );
        assert_eq!(attr(fb, CLOSEDLOOP_FEEDBACK_VALUE), Some(Value::F64(0.0)));
        assert_eq!(
            attr_str(fb, CLOSEDLOOP_FAILURE_CATEGORY).as_deref(),
            Some("hallucination")
        );
        assert_eq!(
            attr_str(fb, CLOSEDLOOP_FEEDBACK_ID).as_deref(),
            Some("fb-1")
        );
        assert_eq!(
            attr_str(fb, GEN_AI_EVALUATION_NAME).as_deref(),
            Some("closedloop.feedback.thumbs_down")
        );
        assert_eq!(
            attr(fb, GEN_AI_EVALUATION_SCORE_VALUE),
            Some(Value::F64(0.0))
        );
        assert_eq!(
            attr_str(fb, GEN_AI_EVALUATION_SCORE_LABEL).as_deref(),
            Some("fail")
        );
        // Comments are content: off by default.
        assert_eq!(attr(fb, CLOSEDLOOP_FEEDBACK_COMMENT), None);
        assert_eq!(attr(fb, GEN_AI_EVALUATION_EXPLANATION), None);
    }
}

#[test]
fn comments_are_exported_redacted_with_comment_capture_on() {
    let layer = ClosedloopLayer::builder()
        .with_capture(ContentKind::Comment)
        .with_redactor(|_, text| text.replace("alice@example.com", "[email]").into())
        .build();
    let policy = layer.content_policy();
    let h = harness(Order::OtelFirst, layer);
    let response = answer(&h);
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    FeedbackRecorder::new(&provider)
        .with_content_policy(policy)
        .record(
            &response,
            Feedback::new(FeedbackSignal::Rating)
                .with_value(0.75)
                .with_comment("mail alice@example.com"),
        )
        .unwrap();
    let fb = &exporter.get_finished_spans().unwrap()[0];
    assert_eq!(
        attr_str(fb, CLOSEDLOOP_FEEDBACK_COMMENT).as_deref(),
        Some("mail [email]")
    );
    assert_eq!(
        attr_str(fb, GEN_AI_EVALUATION_EXPLANATION).as_deref(),
        Some("mail [email]")
    );
    assert_eq!(
        attr_str(fb, GEN_AI_EVALUATION_SCORE_LABEL).as_deref(),
        Some("pass")
    );
}

#[test]
fn values_outside_zero_to_one_are_refused() {
    let provider = SdkTracerProvider::builder().build();
    let response = ResponseRef::from_span_context(&opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from(7u128),
        opentelemetry::trace::SpanId::from(9u64),
        opentelemetry::trace::TraceFlags::SAMPLED,
        false,
        Default::default(),
    ))
    .unwrap();
    assert_eq!(
        FeedbackRecorder::new(&provider).record(
            &response,
            Feedback::new(FeedbackSignal::Rating).with_value(1.5)
        ),
        Err(FeedbackError::ValueOutOfRange(1.5))
    );
}

#[test]
fn a_browser_token_round_trip_records_feedback_through_the_global_provider() {
    let h = harness(Order::ClosedloopFirst, ClosedloopLayer::new());
    let now = SystemTime::now();
    let response = answer(&h).with_feedback_token(SECRET, now + Duration::from_secs(600));

    // The client gets JSON, and sends the token back with its feedback.
    let json = serde_json::to_string(&response).unwrap();
    let received: ResponseRef = serde_json::from_str(&json).unwrap();
    let token = received.feedback_token().unwrap();

    // A token for this answer cannot be bent to another span.
    let verified = verify_feedback_token(SECRET, token, now).unwrap();
    assert_eq!(verified.span_id(), response.span_id());
    assert!(verify_feedback_token(SECRET, token, now + Duration::from_secs(601)).is_err());

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider);
    record_feedback(
        &verified.response_ref(),
        Feedback::new(FeedbackSignal::Copy),
    )
    .unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].span_context.trace_id(), response.trace_id());
    assert_eq!(spans[0].parent_span_id, response.span_id());
    assert_eq!(
        attr_str(&spans[0], CLOSEDLOOP_FEEDBACK_KIND).as_deref(),
        Some("implicit")
    );
}
