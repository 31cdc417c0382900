//! The whole loop through the network: a generation span and feedback reach the receiver over
//! OTLP or `POST /v1/feedback`, and a failure record reaches an OTLP backend.

mod support;

use std::time::{Duration, SystemTime};

use closedloop_semconv::attribute as attr;
use closedloop_tracing::issue_feedback_token;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use support::receiver::{TestReceiver, TOKEN_SECRET};
use support::*;
use tonic::codec::CompressionEncoding;

const WAIT: Duration = Duration::from_secs(15);

async fn receiver_exporting_to(sink: &Sink) -> TestReceiver {
    let (endpoint, protocol) = sink.endpoint();
    TestReceiver::start(|config| {
        config.export.endpoint = Some(endpoint);
        config.export.protocol = Some(protocol);
        config.export.initial_backoff_millis = 50;
        config.export.max_backoff_secs = 1;
        config.join.wait_secs = 2;
    })
    .await
}

#[tokio::test]
async fn feedback_span_over_otlp_yields_a_failure_record() {
    let sink = Sink::grpc().await;
    let receiver = receiver_exporting_to(&sink).await;

    // The generation span over gRPC (gzip), the feedback span later over HTTP/protobuf.
    let response = ids();
    let generation = Generation::default();
    let mut client = TraceServiceClient::connect(receiver.grpc_url())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let reply = client
        .export(request(vec![generation_span(response, &generation)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.partial_success, None);

    let feedback = child(response);
    let body = request(vec![feedback_span(
        feedback,
        Some(response),
        "thumbs_down",
        vec![text(attr::CLOSEDLOOP_FAILURE_CATEGORY, "hallucination")],
    )])
    .encode_to_vec();
    let reply = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);

    let spans = sink.wait_for(1, WAIT).await;
    let record = &spans[0];
    assert_enriched_record(record, response, &generation);
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("hallucination")
    );
    assert!(
        record.links().contains(&(
            feedback.0.to_vec(),
            feedback.1.to_vec(),
            Some("feedback".to_owned())
        )),
        "links the feedback span: {:?}",
        record.links()
    );

    receiver.stop().await.unwrap();
    sink.stop().await;
}

#[tokio::test]
async fn feedback_api_yields_a_failure_record() {
    let sink = Sink::http().await;
    let receiver = receiver_exporting_to(&sink).await;

    // The generation span as OTLP/JSON.
    let response = ids();
    let generation = Generation {
        response_id: Some("chatcmpl-full-loop"),
        ..Generation::default()
    };
    let body = serde_json::to_vec(&request(vec![generation_span(response, &generation)])).unwrap();
    let reply = reqwest::Client::new()
        .post(receiver.http_url("/v1/traces"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.unwrap(), "{}");

    // The user's rating from the browser, with the token the application minted.
    let token = issue_feedback_token(
        TOKEN_SECRET.as_bytes(),
        TraceId::from_bytes(response.0),
        SpanId::from_bytes(response.1),
        SystemTime::now() + Duration::from_secs(600),
    );
    let reply = reqwest::Client::new()
        .post(receiver.http_url("/v1/feedback"))
        .json(&serde_json::json!({
            "response": {
                "trace_id": hex::encode(response.0),
                "span_id": hex::encode(response.1),
                "feedback_token": token,
            },
            "signal": "rating",
            "rating": 1,
            "scale": 5,
            "category": "missing_context",
            "idempotency_id": "fb-full-loop-1",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);

    let spans = sink.wait_for(1, WAIT).await;
    let record = &spans[0];
    assert_enriched_record(record, response, &generation);
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("missing_context")
    );
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["rating".to_owned()])
    );

    receiver.stop().await.unwrap();
    sink.stop().await;
}
