//! `server.feedback_addr`: the browser feedback API on its own listener, away from OTLP ingest.

mod support;

use std::time::{Duration, SystemTime};

use closedloop_tracing::issue_feedback_token;
use opentelemetry::trace::{SpanId, TraceId};
use prost::Message;
use serde_json::json;
use support::receiver::{TestReceiver, TOKEN_SECRET};
use support::{generation_span, ids, request, Generation};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

async fn post_feedback(url: String) -> u16 {
    let token = issue_feedback_token(
        TOKEN_SECRET.as_bytes(),
        TraceId::from_hex(TRACE_ID).unwrap(),
        SpanId::from_hex(SPAN_ID).unwrap(),
        SystemTime::now() + Duration::from_secs(3600),
    );
    reqwest::Client::new()
        .post(url)
        .json(&json!({
            "response": { "trace_id": TRACE_ID, "span_id": SPAN_ID },
            "signal": "thumbs_down",
            "feedback_token": token,
            "idempotency_id": "fb-separate",
        }))
        .send()
        .await
        .expect("feedback request")
        .status()
        .as_u16()
}

async fn post_traces(url: String) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(request(vec![generation_span(ids(), &Generation::default())]).encode_to_vec())
        .send()
        .await
        .expect("traces request")
        .status()
        .as_u16()
}

async fn get_status(url: String) -> u16 {
    reqwest::get(url).await.expect("get").status().as_u16()
}

#[tokio::test]
async fn feedback_is_served_on_its_own_port_only() {
    let receiver = TestReceiver::start(|config| {
        // The address is a marker: the fixture binds 127.0.0.1:0 for it.
        config.server.feedback_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let feedback_addr = receiver.feedback_addr.expect("feedback listener");
    let feedback_url = |path: &str| format!("http://{feedback_addr}{path}");

    assert_eq!(post_feedback(feedback_url("/v1/feedback")).await, 201);
    assert_eq!(post_feedback(receiver.http_url("/v1/feedback")).await, 404);
    assert_eq!(post_traces(feedback_url("/v1/traces")).await, 404);
    assert_eq!(post_traces(receiver.http_url("/v1/traces")).await, 200);
    assert_eq!(get_status(feedback_url("/healthz")).await, 200);
    assert_eq!(get_status(receiver.http_url("/healthz")).await, 200);
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_feedback_listener_feedback_shares_the_http_port() {
    let receiver = TestReceiver::start(|_| {}).await;
    assert!(receiver.feedback_addr.is_none());
    assert_eq!(post_feedback(receiver.http_url("/v1/feedback")).await, 201);
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn a_configured_feedback_address_without_its_listener_is_an_error() {
    use closedloop_receiver::{Config, Listeners, Receiver, ServeError};
    use tokio::net::TcpListener;

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.path = dir.path().join("closedloop.db");
    config.export.use_env = false;
    config.server.feedback_addr = Some("127.0.0.1:0".parse().unwrap());
    let listeners = Listeners {
        grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        feedback: None,
        ui: None,
    };
    let result = Receiver::builder(config)
        .build()
        .serve(listeners, std::future::pending())
        .await;
    assert!(
        matches!(result, Err(ServeError::MissingFeedbackListener)),
        "{result:?}"
    );
}
