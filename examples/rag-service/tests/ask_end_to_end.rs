//! `POST /ask` end to end in-process: the answer, and the spans it leaves behind.

mod support;

use closedloop_example_rag::{
    template_version_for_session, AskResponse, EXTRACTIVE_LABEL, EXTRACTIVE_MODEL,
    EXTRACTIVE_PROVIDER, TEMPLATE_ID,
};
use closedloop_semconv::attribute::{
    CLOSEDLOOP_CONTEXT_CHUNK_IDS, CLOSEDLOOP_PROMPT_TEMPLATE_HASH, CLOSEDLOOP_PROMPT_TEMPLATE_ID,
    CLOSEDLOOP_PROMPT_TEMPLATE_VERSION, CLOSEDLOOP_QUERY_FINGERPRINT, CLOSEDLOOP_QUERY_TEXT,
    CLOSEDLOOP_RETRIEVAL_CHUNK_IDS, CLOSEDLOOP_RETRIEVAL_INDEX_VERSION, CLOSEDLOOP_TURN_INDEX,
    GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, SESSION_ID, USER_ID,
};
use opentelemetry::trace::SpanId;
use serde_json::json;
use support::*;

/// The first session id (of a fixed sequence) that gets `version`.
fn session_with(version: &str) -> String {
    (0..)
        .map(|i| format!("e2e-session-{i}"))
        .find(|s| template_version_for_session(s) == version)
        .unwrap_or_default()
}

async fn ask(addr: std::net::SocketAddr, session: &str, query: &str) -> AskResponse {
    let (status, body) = post(
        addr,
        "/ask",
        &json!({ "session_id": session, "user_id": "user-7", "query": query }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_span_carries_template_version_and_reranked_chunks() {
    let addr = start_service().await;
    for (version, expected_chunks) in [("v1", 3), ("v2", 2)] {
        let session = session_with(version);
        let answer = ask(addr, &session, "How do I reset my password? I forgot it").await;
        assert_eq!(answer.template_version, version);
        assert_eq!(answer.answerer, EXTRACTIVE_LABEL);
        assert_eq!(answer.chunk_ids.len(), expected_chunks, "{answer:?}");
        assert_eq!(answer.chunk_ids[0], "reset-password#0");
        assert!(
            answer.answer.contains("Forgot password?"),
            "{}",
            answer.answer
        );
        let response = answer
            .response
            .expect("an OpenTelemetry layer is installed");
        assert!(answer.feedback_token.is_some());
        assert_eq!(
            response.traceparent(),
            format!("00-{}-{}-01", response.trace_id(), response.span_id())
        );

        let spans = spans_of(response.trace_id());
        let generation = span_by_id(&spans, response.span_id());
        assert_eq!(generation.name, format!("chat {EXTRACTIVE_MODEL}"));
        assert_eq!(
            attr_str(generation, CLOSEDLOOP_PROMPT_TEMPLATE_ID).as_deref(),
            Some(TEMPLATE_ID)
        );
        assert_eq!(
            attr_str(generation, CLOSEDLOOP_PROMPT_TEMPLATE_VERSION).as_deref(),
            Some(version)
        );
        assert!(attr_str(generation, CLOSEDLOOP_PROMPT_TEMPLATE_HASH)
            .is_some_and(|h| h.starts_with("sha256:")));
        assert_eq!(
            attr_strings(generation, CLOSEDLOOP_CONTEXT_CHUNK_IDS).as_deref(),
            Some(answer.chunk_ids.as_slice()),
            "context chunk ids on {:?}",
            generation.attributes
        );
        assert_eq!(
            attr_str(generation, CLOSEDLOOP_RETRIEVAL_INDEX_VERSION),
            Some(answer.index_version.clone())
        );
        assert_eq!(
            attr_str(generation, GEN_AI_REQUEST_MODEL).as_deref(),
            Some(EXTRACTIVE_MODEL)
        );
        assert_eq!(
            attr_str(generation, GEN_AI_PROVIDER_NAME).as_deref(),
            Some(EXTRACTIVE_PROVIDER)
        );
        assert_eq!(attr_str(generation, SESSION_ID), Some(session.clone()));
        assert_eq!(attr_str(generation, USER_ID).as_deref(), Some("user-7"));
        assert!(attr_str(generation, CLOSEDLOOP_QUERY_FINGERPRINT)
            .is_some_and(|f| f.starts_with("mh64v3:")));
        // Content capture is off by default.
        assert_eq!(attr(generation, CLOSEDLOOP_QUERY_TEXT), None);

        // The rerank span returned the top 3; the prompt got its head.
        let rerank = span_named(&spans, "rerank ").expect("a rerank span");
        let reranked = attr_strings(rerank, CLOSEDLOOP_RETRIEVAL_CHUNK_IDS).unwrap();
        assert_eq!(reranked.len(), 3);
        assert_eq!(&reranked[..expected_chunks], answer.chunk_ids.as_slice());
        let retrieval = span_named(&spans, "retrieval ").expect("a retrieval span");
        assert_eq!(
            attr_strings(retrieval, CLOSEDLOOP_RETRIEVAL_CHUNK_IDS)
                .unwrap()
                .len(),
            8
        );
        assert_eq!(span_named(&spans, "filter ").is_some(), version == "v2");

        // One root: the HTTP server span.
        let roots: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == SpanId::INVALID)
            .collect();
        assert_eq!(names(&spans).len(), spans.len());
        assert_eq!(roots.len(), 1, "{:?}", names(&spans));
        assert_eq!(roots[0].name, "POST /ask");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_count_per_session_and_bad_input_is_a_400() {
    let addr = start_service().await;
    let session = "turn-counting-session";
    let first = ask(addr, session, "How do I export my data?").await;
    let second = ask(addr, session, "export workspace as CSV").await;
    let turns: Vec<i64> = [first, second]
        .iter()
        .map(|a| {
            let r = a.response.as_ref().unwrap();
            let spans = spans_of(r.trace_id());
            match attr(span_by_id(&spans, r.span_id()), CLOSEDLOOP_TURN_INDEX) {
                Some(opentelemetry::Value::I64(turn)) => *turn,
                other => panic!("turn index {other:?}"),
            }
        })
        .collect();
    assert_eq!(turns, [0, 1]);

    for body in [
        json!({ "session_id": "s", "query": "   " }),
        json!({ "session_id": "", "query": "refunds" }),
        json!({ "session_id": "s", "query": "x".repeat(5000) }),
    ] {
        let (status, body) = post(addr, "/ask", &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid request")));
    }
    let (status, _) = post(addr, "/ask", &json!({ "query": "no session" })).await;
    assert_eq!(status, 422);
}
