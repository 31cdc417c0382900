//! The optional ingest token: OTLP exports without `Authorization: Bearer <token>` are refused
//! on both transports and store nothing; `/healthz` and `/v1/feedback` do not need it.

mod support;

use closedloop_receiver::IngestToken;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;
use support::receiver::TestReceiver;
use support::{feedback_span, generation_span, ids, request, Generation};

const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A response and a thumbs-down on it: accepted, this would create a failure record.
fn spans() -> ExportTraceServiceRequest {
    let response = ids();
    request(vec![
        generation_span(response, &Generation::default()),
        feedback_span(ids(), Some(response), "thumbs_down", Vec::new()),
    ])
}

async fn start() -> TestReceiver {
    TestReceiver::start(|config| {
        config.server.ingest_token = Some(IngestToken::new(TOKEN).unwrap());
    })
    .await
}

async fn accepted_spans(receiver: &TestReceiver) -> u64 {
    let health: Value = reqwest::get(receiver.http_url("/healthz"))
        .await
        .expect("healthz without a token")
        .json()
        .await
        .unwrap();
    health["spans"]["accepted"].as_u64().unwrap()
}

async fn http_export(
    receiver: &TestReceiver,
    authorization: Option<&str>,
    content_type: &str,
) -> reqwest::Response {
    let mut builder = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", content_type);
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    let body = if content_type == "application/json" {
        serde_json::to_vec(&spans()).unwrap()
    } else {
        spans().encode_to_vec()
    };
    builder.body(body).send().await.expect("request sent")
}

#[tokio::test]
async fn otlp_http_needs_the_token() {
    let receiver = start().await;
    let wrong = format!("Bearer {TOKEN}0");
    for authorization in [None, Some("Bearer nope"), Some(wrong.as_str()), Some(TOKEN)] {
        let response = http_export(&receiver, authorization, "application/json").await;
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(response.headers()["content-type"], "application/json");
        let status: Value = response.json().await.unwrap();
        assert_eq!(status["code"], tonic::Code::Unauthenticated as i32);
    }
    // A protobuf request gets a protobuf google.rpc.Status.
    let response = http_export(&receiver, None, "application/x-protobuf").await;
    assert_eq!(response.status(), 401);
    let status = tonic_types::Status::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, tonic::Code::Unauthenticated as i32);
    assert_eq!(
        accepted_spans(&receiver).await,
        0,
        "refused spans were stored"
    );

    let right = format!("Bearer {TOKEN}");
    let response = http_export(&receiver, Some(&right), "application/x-protobuf").await;
    assert_eq!(response.status(), 200);
    assert_eq!(accepted_spans(&receiver).await, 2);
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn otlp_grpc_needs_the_token() {
    let receiver = start().await;
    let mut client = TraceServiceClient::connect(receiver.grpc_url())
        .await
        .unwrap();
    let with = |value: Option<String>| {
        let mut request = tonic::Request::new(spans());
        if let Some(value) = value {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        request
    };
    for value in [None, Some("Bearer nope".to_owned()), Some(TOKEN.to_owned())] {
        let status = client.export(with(value.clone())).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{value:?}");
    }
    assert_eq!(
        accepted_spans(&receiver).await,
        0,
        "refused spans were stored"
    );

    client
        .export(with(Some(format!("Bearer {TOKEN}"))))
        .await
        .expect("export with the token");
    assert_eq!(accepted_spans(&receiver).await, 2);
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn the_feedback_api_does_not_need_the_ingest_token() {
    let receiver = start().await;
    // An invalid feedback token is the feedback API's own refusal (400/401 with its JSON
    // error), not the ingest token's 401 with WWW-Authenticate.
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .json(&serde_json::json!({
            "response": {
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
            },
            "signal": "thumbs_down",
            "feedback_token": "garbage",
            "idempotency_id": "fb-1",
        }))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("www-authenticate").is_none());
    let body: Value = response.json().await.unwrap();
    assert!(body.get("error").is_some(), "{body}");
    receiver.stop().await.unwrap();
}

#[test]
fn the_token_comes_from_the_environment_and_is_never_printed() {
    let check_config = |token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_closedloop"))
            .arg("check-config")
            .env("CLOSEDLOOP_INGEST_TOKEN", token)
            .env_remove("CLOSEDLOOP_CONFIG")
            .output()
            .expect("run closedloop check-config")
    };
    let output = check_config(TOKEN);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("IngestToken(<redacted>)"), "{printed}");
    assert!(!printed.contains(TOKEN), "the token was printed");

    let output = check_config("");
    assert!(!output.status.success(), "an empty token was accepted");
    assert!(String::from_utf8_lossy(&output.stderr).contains("CLOSEDLOOP_INGEST_TOKEN"));
}
