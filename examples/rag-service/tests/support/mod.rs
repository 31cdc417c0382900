//! Shared fixtures: one in-memory span exporter behind a global subscriber, and the service
//! on 127.0.0.1:0.

#![allow(dead_code)] // Each test file uses a subset of these helpers.

use std::net::SocketAddr;
use std::sync::OnceLock;

use closedloop_example_rag::Config;
use closedloop_tracing::{ClosedloopLayer, FeedbackRecorder};
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;

pub(crate) const SECRET: &[u8] = b"test secret for the rag-service integration tests";

pub(crate) struct Telemetry {
    pub(crate) exporter: InMemorySpanExporter,
    pub(crate) provider: SdkTracerProvider,
}

/// Installs the global subscriber once per test binary: axum runs handlers on worker threads,
/// so a thread-local default would not see them.
pub(crate) fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("rag-service-test")))
            .with(ClosedloopLayer::new());
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        Telemetry { exporter, provider }
    })
}

/// Starts the service in-process and returns its address.
pub(crate) async fn start_service() -> SocketAddr {
    let telemetry = telemetry();
    let config = Config::new(SECRET.to_vec())
        .with_feedback_recorder(FeedbackRecorder::new(&telemetry.provider));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(closedloop_example_rag::serve(
        listener,
        config,
        std::future::pending(),
    ));
    addr
}

/// Finished spans of one trace.
pub(crate) fn spans_of(trace_id: TraceId) -> Vec<SpanData> {
    let telemetry = telemetry();
    telemetry.provider.force_flush().unwrap();
    telemetry
        .exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect()
}

pub(crate) fn span_by_id(spans: &[SpanData], id: SpanId) -> &SpanData {
    spans
        .iter()
        .find(|s| s.span_context.span_id() == id)
        .unwrap_or_else(|| panic!("no span {id} among {:?}", names(spans)))
}

pub(crate) fn span_named<'a>(spans: &'a [SpanData], prefix: &str) -> Option<&'a SpanData> {
    spans.iter().find(|s| s.name.starts_with(prefix))
}

pub(crate) fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

pub(crate) fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

pub(crate) fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub(crate) fn attr_strings(span: &SpanData, key: &str) -> Option<Vec<String>> {
    match attr(span, key)? {
        Value::Array(Array::String(values)) => {
            Some(values.iter().map(|v| v.as_str().to_owned()).collect())
        }
        _ => None,
    }
}

pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}
