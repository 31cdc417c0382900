//! Interoperability with the official OpenTelemetry Python SDK: an application instrumented
//! with it exports a generation span and a feedback span straight to the receiver, over OTLP
//! gRPC and OTLP HTTP/protobuf, and the failure record reaches the backend.
//!
//! Needs `python3`; `scripts/python-env.sh` creates the virtual environment with the SDK once.
//! Without Python the test fails with the reason, rather than passing without running.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use closedloop_semconv::attribute as attr;
use support::receiver::TestReceiver;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the test environment: `CLOSEDLOOP_TEST_PYTHON` when the test script already
/// prepared it, otherwise created (once) by `scripts/python-env.sh`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("CLOSEDLOOP_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let script = repo_root().join("scripts/python-env.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    assert!(
        output.status.success(),
        "{} failed; this test needs python3 with the venv module.\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Runs the emitter; returns the judged span's (trace id, span id) in hex.
async fn emit(protocol: &'static str, endpoint: String) -> (String, String) {
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/emit_feedback.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(protocol)
            .arg(endpoint)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .output()
            .expect("run the Python emitter")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "emitter failed: {stderr}");
    // The SDK logs export failures instead of failing; make them fail the test.
    assert!(
        !stderr.contains("Failed to export"),
        "the SDK could not export: {stderr}"
    );
    let ids: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        ids["trace_id"].as_str().unwrap().to_owned(),
        ids["span_id"].as_str().unwrap().to_owned(),
    )
}

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

    let (trace_id, span_id) = emit(protocol, target).await;

    let spans = sink.wait_for(1, WAIT).await;
    let record = &spans[0];
    assert_eq!(hex::encode(&record.span.trace_id), trace_id);
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_SPAN_ID),
        Some(span_id.as_str())
    );
    let links = record.links();
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(hex::encode(&links[0].1), span_id);
    assert_eq!(links[0].2.as_deref(), Some("judged_response"));
    assert_eq!(links[1].2.as_deref(), Some("feedback"));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_CATEGORY),
        Some("hallucination")
    );
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID),
        Some("answer_with_context")
    );
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS),
        Some(vec![
            "kb-reset-password#2".to_owned(),
            "kb-account-locked#0".to_owned()
        ])
    );
    assert_eq!(record.str(attr::GEN_AI_REQUEST_MODEL), Some("gpt-4o"));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION),
        Some("2026-11-20")
    );

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
