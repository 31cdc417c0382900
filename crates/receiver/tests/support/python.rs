//! The Python peers: the official OpenTelemetry Python SDK (an instrumented application) and
//! rotel (a collector), from the virtual environment `scripts/python-env.sh` creates.
//!
//! Without Python these fixtures fail with the reason, rather than letting a test pass without
//! running.

use std::path::{Path, PathBuf};
use std::process::Command;

use closedloop_semconv::attribute as attr;

use super::Exported;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the test environment: `CLOSEDLOOP_TEST_PYTHON` when the test script already
/// prepared it, otherwise created (once) by `scripts/python-env.sh`.
pub fn python() -> PathBuf {
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

/// The rotel-agent binary that the `rotel` wheel installs into the test environment.
pub fn rotel_agent() -> PathBuf {
    let output = Command::new(python())
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .expect("run the test environment's python");
    assert!(
        output.status.success(),
        "the rotel package is not installed in the test environment: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let agent = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    assert!(agent.is_file(), "no rotel-agent at {}", agent.display());
    agent
}

/// Runs `tests/python/emit_feedback.py`: the Python SDK exports a generation span and a
/// feedback span about it to `endpoint` over `protocol` (`grpc` or `http`). Returns the judged
/// span's (trace id, span id) in hex.
pub async fn emit_feedback(protocol: &'static str, endpoint: String) -> (String, String) {
    let python = python();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../receiver/tests/python/emit_feedback.py");
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

/// Asserts that `record` is the failure record `emit_feedback.py`'s feedback produces for the
/// judged span: in its trace, linked to it and to the feedback span, enriched from it.
pub fn assert_emitted_failure_record(record: &Exported, trace_id: &str, span_id: &str) {
    assert_eq!(hex::encode(&record.span.trace_id), trace_id);
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_SPAN_ID),
        Some(span_id)
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
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL),
        Some("gpt-4o")
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION),
        Some("2026-11-20")
    );
}
