//! OTLP/HTTP `POST /v1/traces` against a real receiver: protobuf, JSON, gzip, limits, errors.

mod support;

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::receiver::TestReceiver;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn request(spans: usize) -> ExportTraceServiceRequest {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![0x4b; 16],
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: format!("span {i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_001_000_000_000,
            ..Default::default()
        })
        .collect();
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

fn content_type(response: &reqwest::Response) -> String {
    response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Decodes a `google.rpc.Status` error body in either encoding: (code, message).
async fn status_body(response: reqwest::Response) -> (i32, String) {
    let protobuf = content_type(&response) == PROTOBUF;
    let body = response.bytes().await.unwrap();
    if protobuf {
        let status = tonic_types::Status::decode(body).expect("google.rpc.Status body");
        (status.code, status.message)
    } else {
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json body");
        (
            json["code"].as_i64().expect("code") as i32,
            json["message"].as_str().expect("message").to_owned(),
        )
    }
}

async fn assert_still_serving(receiver: &TestReceiver) {
    let response = receiver
        .post_traces(PROTOBUF, false, request(1).encode_to_vec())
        .await;
    assert_eq!(response.status(), 200, "a good request after an error");
}

#[tokio::test]
async fn protobuf_full_success() {
    let receiver = TestReceiver::start(|_| {}).await;
    for gzip_body in [false, true] {
        let response = receiver
            .post_traces(PROTOBUF, gzip_body, request(3).encode_to_vec())
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(content_type(&response), PROTOBUF);
        let body = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
        assert_eq!(body.partial_success, None, "gzip: {gzip_body}");
    }
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn json_full_success_is_an_empty_object() {
    let receiver = TestReceiver::start(|_| {}).await;
    let json = serde_json::to_vec(&request(2)).unwrap();
    for gzip_body in [false, true] {
        let response = receiver.post_traces(JSON, gzip_body, json.clone()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(content_type(&response), JSON);
        assert_eq!(response.text().await.unwrap(), "{}", "gzip: {gzip_body}");
    }
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn json_as_other_encoders_write_it() {
    let receiver = TestReceiver::start(|_| {}).await;
    // Upper-case hex ids, 64-bit ints as numbers and strings, an explicit null parent,
    // unknown fields and a charset parameter.
    let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"app"}}]},
      "scopeSpans":[{"scope":{"name":"t"},"spans":[{
        "traceId":"4BF92F3577B34DA6A3CE929D0E0E4736","spanId":"00F067AA0BA902B7","parentSpanId":null,
        "name":"chat gpt-4o","kind":3,"startTimeUnixNano":1700000000000000000,
        "endTimeUnixNano":"1700000001000000000","futureField":[1,2,3],
        "attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"42"}}]}]}]}]}"#;
    let response = receiver
        .post_traces("application/json; charset=utf-8", false, body.into())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{}");
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_get_413_before_and_after_decompression() {
    let receiver = TestReceiver::start(|config| config.server.max_http_body_mib = 1).await;
    let big = request(1);
    let mut big_bytes = big.encode_to_vec();
    // Pad with an unknown field (tag 15, length-delimited) to exceed 1 MiB.
    let padding = vec![b'x'; 1 << 20];
    prost::encoding::bytes::encode(15, &padding, &mut big_bytes);

    let response = receiver
        .post_traces(PROTOBUF, false, big_bytes.clone())
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        status_body(response).await.0,
        tonic::Code::ResourceExhausted as i32
    );

    // Compressed, the body is tiny; only the decompressed size is over the limit.
    let response = receiver.post_traces(PROTOBUF, true, big_bytes).await;
    assert_eq!(response.status(), 413);

    // A gzip bomb: 256 MiB of zeros in ~256 KiB.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    for _ in 0..256 {
        encoder.write_all(&[0u8; 1 << 20]).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", JSON)
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let (code, message) = status_body(response).await;
    assert_eq!(code, tonic::Code::ResourceExhausted as i32);
    assert!(message.contains("limit"), "{message}");

    assert_still_serving(&receiver).await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_status_body() {
    let receiver = TestReceiver::start(|_| {}).await;

    let response = receiver
        .post_traces(PROTOBUF, false, b"\x0a\xff\xff\xff".to_vec())
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(content_type(&response), PROTOBUF);
    let (code, message) = status_body(response).await;
    assert_eq!(code, tonic::Code::InvalidArgument as i32);
    assert!(message.contains("protobuf"), "{message}");

    let response = receiver
        .post_traces(JSON, false, br#"{"resourceSpans": [{"#.to_vec())
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(content_type(&response), JSON);
    let (code, message) = status_body(response).await;
    assert_eq!(code, tonic::Code::InvalidArgument as i32);
    assert!(message.contains("json"), "{message}");

    // Enums are integers only in OTLP/JSON.
    let response = receiver
        .post_traces(
            JSON,
            false,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_SERVER"}]}]}]}"#
                .to_vec(),
        )
        .await;
    assert_eq!(response.status(), 400);

    // A body that claims gzip but is not.
    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", PROTOBUF)
        .header("content-encoding", "gzip")
        .body("plain text")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    assert_still_serving(&receiver).await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_content_type_or_encoding_gets_415() {
    let receiver = TestReceiver::start(|_| {}).await;

    let response = receiver
        .post_traces("text/plain", false, b"hello".to_vec())
        .await;
    assert_eq!(response.status(), 415);
    let (code, message) = status_body(response).await;
    assert_eq!(code, tonic::Code::Unimplemented as i32);
    assert!(message.contains("application/x-protobuf"), "{message}");

    let response = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", PROTOBUF)
        .header("content-encoding", "br")
        .body(request(1).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    let response = reqwest::Client::new()
        .get(receiver.http_url("/v1/traces"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

    assert_still_serving(&receiver).await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn healthz_reports_the_pipeline() {
    let receiver = TestReceiver::start(|_| {}).await;
    let response = reqwest::get(receiver.http_url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["export"]["pending"].is_u64(), "{body}");
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn spans_the_pipeline_rejects_are_a_partial_success() {
    let receiver = TestReceiver::start(|_| {}).await;
    let mut partial = request(3);
    // A trace id must be 16 bytes.
    partial.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![1, 2, 3];

    let response = receiver
        .post_traces(PROTOBUF, false, partial.encode_to_vec())
        .await;
    assert_eq!(response.status(), 200);
    let body = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial_success = body.partial_success.expect("partial success");
    assert_eq!(partial_success.rejected_spans, 1);
    assert!(!partial_success.error_message.is_empty());

    let response = receiver
        .post_traces(JSON, false, serde_json::to_vec(&partial).unwrap())
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1", "{body}");
    receiver.stop().await.unwrap();
}
