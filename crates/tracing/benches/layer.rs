//! Per-span cost of `ClosedloopLayer` on top of tracing-opentelemetry.
//!
//! Each iteration creates a retrieval span carrying 8 chunk IDs and a generation span under it,
//! enters and closes both. Cases: no OpenTelemetry layer (baseline), tracing-opentelemetry
//! alone, tracing-opentelemetry alone with the attributes closedloop adds written by hand, and
//! tracing-opentelemetry with `ClosedloopLayer` in either order, and the same request written
//! with closedloop's span helpers. Spans go through a
//! simple span processor to an exporter that drops them, so the numbers are the synchronous
//! per-span cost on the application thread.

use std::time::Duration;

use closedloop_semconv::attribute::GenAiOperationName;
use closedloop_semconv::attribute::{
    CLOSEDLOOP_CONTEXT_CHUNK_IDS, CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
    CLOSEDLOOP_RETRIEVAL_INDEX_VERSION, GEN_AI_DATA_SOURCE_ID, GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
};
use closedloop_tracing::{generation, retrieval, ClosedloopLayer};
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Array, StringValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Dispatch;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Registry;

/// Drops every span.
#[derive(Debug)]
struct DropExporter;

impl SpanExporter for DropExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

fn provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_simple_exporter(DropExporter)
        .build()
}

/// One request: a retrieval span with 8 chunks and a generation span under it.
fn request() {
    let retrieval = tracing::info_span!(
        "retrieval",
        otel.name = "retrieval kb",
        { GEN_AI_OPERATION_NAME } = "retrieval",
        { GEN_AI_DATA_SOURCE_ID } = "kb",
        { CLOSEDLOOP_RETRIEVAL_INDEX_VERSION } = "v4",
        { CLOSEDLOOP_RETRIEVAL_CHUNK_IDS } =
            "kb-1#0,kb-1#1,kb-2#0,kb-3#4,kb-5#2,kb-8#1,kb-9#0,kb-9#3",
    );
    let _retrieval = retrieval.enter();
    let generation = tracing::info_span!(
        "generation",
        otel.name = "chat gpt-4o",
        { GEN_AI_OPERATION_NAME } = "chat",
        { GEN_AI_REQUEST_MODEL } = "gpt-4o",
    );
    let _generation = generation.enter();
}

/// The same request written with closedloop's helpers: typed chunk IDs through
/// `RetrievalSpan::record_chunks` instead of a comma-separated field. Only meaningful with the
/// layer installed (without it the helpers record no chunks), so it has no OpenTelemetry-only
/// twin; its spans also declare more fields than `request`'s.
fn request_with_helpers() {
    let search = retrieval("kb").with_index_version("v4").start();
    let _retrieval = search.span().enter();
    search.record_chunks(
        [
            "kb-1#0", "kb-1#1", "kb-2#0", "kb-3#4", "kb-5#2", "kb-8#1", "kb-9#0", "kb-9#3",
        ],
        None,
    );
    let llm = generation(GenAiOperationName::Chat, "gpt-4o").start();
    let _generation = llm.span().enter();
}

/// The same request with the attributes `ClosedloopLayer` adds written by hand through
/// `OpenTelemetrySpanExt`: the cost of the attributes themselves, without the layer.
fn request_with_manual_attributes() {
    let ids = "kb-1#0,kb-1#1,kb-2#0,kb-3#4,kb-5#2,kb-8#1,kb-9#0,kb-9#3";
    let retrieval = tracing::info_span!(
        "retrieval",
        otel.name = "retrieval kb",
        { GEN_AI_OPERATION_NAME } = "retrieval",
        { GEN_AI_DATA_SOURCE_ID } = "kb",
        { CLOSEDLOOP_RETRIEVAL_INDEX_VERSION } = "v4",
        { CLOSEDLOOP_RETRIEVAL_CHUNK_IDS } = ids,
    );
    let _retrieval = retrieval.enter();
    let generation = tracing::info_span!(
        "generation",
        otel.name = "chat gpt-4o",
        { GEN_AI_OPERATION_NAME } = "chat",
        { GEN_AI_REQUEST_MODEL } = "gpt-4o",
    );
    let chunk_ids: Vec<StringValue> = ids.split(',').map(|id| id.to_owned().into()).collect();
    generation.set_attribute(
        CLOSEDLOOP_CONTEXT_CHUNK_IDS,
        Value::Array(Array::String(chunk_ids)),
    );
    generation.set_attribute(CLOSEDLOOP_RETRIEVAL_INDEX_VERSION, "v4");
    generation.set_attribute(GEN_AI_DATA_SOURCE_ID, "kb");
    let _generation = generation.enter();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("retrieval_then_generation");

    let cases: Vec<(&str, Dispatch, Option<SdkTracerProvider>)> = {
        let otel_only = provider();
        let otel_first = provider();
        let closedloop_first = provider();
        vec![
            ("no_otel", Dispatch::new(Registry::default()), None),
            (
                "otel",
                Dispatch::new(
                    Registry::default().with(
                        tracing_opentelemetry::layer().with_tracer(otel_only.tracer("bench")),
                    ),
                ),
                Some(otel_only),
            ),
            (
                "otel_then_closedloop",
                Dispatch::new(
                    Registry::default()
                        .with(
                            tracing_opentelemetry::layer().with_tracer(otel_first.tracer("bench")),
                        )
                        .with(ClosedloopLayer::new()),
                ),
                Some(otel_first),
            ),
            (
                "closedloop_then_otel",
                Dispatch::new(Registry::default().with(ClosedloopLayer::new()).with(
                    tracing_opentelemetry::layer().with_tracer(closedloop_first.tracer("bench")),
                )),
                Some(closedloop_first),
            ),
        ]
    };

    for (name, dispatch, _provider) in &cases {
        tracing::dispatcher::with_default(dispatch, || {
            group.bench_function(*name, |b| b.iter(request));
        });
        if *name == "otel_then_closedloop" {
            tracing::dispatcher::with_default(dispatch, || {
                group.bench_function("otel_then_closedloop_helpers", |b| {
                    b.iter(request_with_helpers)
                });
            });
        }
        if *name == "otel" {
            tracing::dispatcher::with_default(dispatch, || {
                group.bench_function("otel_manual_attributes", |b| {
                    b.iter(request_with_manual_attributes)
                });
            });
        }
    }
    group.finish();
}

// `criterion_group!` generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
    }
}
criterion_main!(group::benches);
