//! Interoperability with the official OpenTelemetry Python SDK: an application instrumented
//! with it exports a generation span and a feedback span straight to the receiver, over OTLP
//! gRPC and OTLP HTTP/protobuf, and the failure record reaches the backend.
//!
//! Needs `python3`; `scripts/python-env.sh` creates the virtual environment with the SDK once.
//! Without Python the test fails with the reason, rather than passing without running.

mod support;

use std::time::Duration;

use support::python::{assert_emitted_failure_record, emit_feedback};
use support::receiver::TestReceiver;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

async fn python_sdk_round_trip(protocol: &'static str) {
    let sink = Sink::grpc().await;
    let (endpoint, export_protocol) = sink.endpoint();
    let receiver = TestReceiver::start(|config| {
        config.export.endpoint = Some(endpoint);
        config.export.protocol = Some(export_protocol);
        config.join.wait_secs = 2;
    })
    .await;
    let target = match protocol {
        "grpc" => receiver.grpc_url(),
        _ => receiver.http_url("/v1/traces"),
    };

    let (trace_id, span_id) = emit_feedback(protocol, target).await;

    let spans = sink.wait_for(1, WAIT).await;
    assert_emitted_failure_record(&spans[0], &trace_id, &span_id);

    receiver.stop().await.unwrap();
    sink.stop().await;
}

#[tokio::test]
async fn python_sdk_over_otlp_grpc() {
    python_sdk_round_trip("grpc").await;
}

#[tokio::test]
async fn python_sdk_over_otlp_http() {
    python_sdk_round_trip("http").await;
}
