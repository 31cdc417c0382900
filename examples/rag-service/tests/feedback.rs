//! `POST /feedback`: forged, mismatched and valid tokens.

mod support;

use std::time::{Duration, SystemTime};

use closedloop_example_rag::AskResponse;
use closedloop_semconv::attribute::{
    CLOSEDLOOP_FAILURE_CATEGORY, CLOSEDLOOP_FEEDBACK_SIGNAL, CLOSEDLOOP_LINK_TYPE,
};
use closedloop_tracing::issue_feedback_token;
use opentelemetry::trace::SpanId;
use serde_json::json;
use support::*;

async fn answered(addr: std::net::SocketAddr) -> AskResponse {
    let (status, body) = post(
        addr,
        "/ask",
        &json!({ "session_id": "feedback-session", "query": "What are the API rate limits?" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_mismatched_tokens_are_rejected() {
    let addr = start_service().await;
    let answer = answered(addr).await;
    let response = answer.response.clone().unwrap();
    let later = SystemTime::now() + Duration::from_secs(600);

    let forged = issue_feedback_token(
        b"not the service's secret, but long enough",
        response.trace_id(),
        response.span_id(),
        later,
    );
    let other = answered(addr).await.response.unwrap();
    let expired = issue_feedback_token(
        SECRET,
        response.trace_id(),
        response.span_id(),
        SystemTime::now() - Duration::from_secs(1),
    );
    for (token, target) in [
        (forged, &response),
        ("garbage".to_owned(), &response),
        (expired, &response),
        // A valid token, for another answer.
        (answer.feedback_token.clone().unwrap(), &other),
    ] {
        let (status, body) = post(
            addr,
            "/feedback",
            &json!({ "response": target, "feedback_token": token, "signal": "thumbs_down" }),
        )
        .await;
        assert_eq!(status, 403, "{body}");
    }
    // Nothing was recorded in the judged trace.
    let spans = spans_of(response.trace_id());
    assert!(
        span_named(&spans, "feedback").is_none(),
        "{:?}",
        names(&spans)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_feedback_lands_in_the_judged_trace_with_a_link() {
    let addr = start_service().await;
    let answer = answered(addr).await;
    let response = answer.response.clone().unwrap();
    let token = answer.feedback_token.clone().unwrap();

    let (status, body) = post(
        addr,
        "/feedback",
        &json!({ "response": response, "feedback_token": token, "signal": "sideways" }),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = post(
        addr,
        "/feedback",
        &json!({
            "response": response,
            "feedback_token": token,
            "signal": "thumbs_down",
            "category": "irrelevant_context",
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signal"], "thumbs_down");

    let spans = spans_of(response.trace_id());
    let feedback = span_named(&spans, "feedback thumbs_down").expect("a feedback span");
    assert_eq!(
        attr_str(feedback, CLOSEDLOOP_FEEDBACK_SIGNAL).as_deref(),
        Some("thumbs_down")
    );
    assert_eq!(
        attr_str(feedback, CLOSEDLOOP_FAILURE_CATEGORY).as_deref(),
        Some("irrelevant_context")
    );
    let links = &feedback.links.links;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.span_id(), response.span_id());
    assert!(links[0].attributes.iter().any(
        |kv| kv.key.as_str() == CLOSEDLOOP_LINK_TYPE && kv.value.as_str() == "judged_response"
    ));
    assert_ne!(feedback.parent_span_id, SpanId::INVALID);
}
