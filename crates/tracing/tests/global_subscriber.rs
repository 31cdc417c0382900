//! The layer works when installed as the global default subscriber.
//!
//! One test in its own binary: it sets the process-wide default.

mod support;

use closedloop_semconv::attribute::{GenAiOperationName, CLOSEDLOOP_CONTEXT_CHUNK_IDS};
use closedloop_tracing::{generation, retrieval, ClosedloopLayer, ResponseRef};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::attr_strings;
use tracing_subscriber::layer::SubscriberExt as _;

#[test]
fn chunk_ids_arrive_with_a_global_default_subscriber() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(ClosedloopLayer::new());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // Spans are created and closed on another thread, which only sees the global default.
    let response = std::thread::spawn(|| {
        let request = tracing::info_span!("request");
        let _request = request.enter();
        let r = retrieval("kb").start();
        r.span().in_scope(|| r.record_chunks(["a", "b"], None));
        let llm = generation(GenAiOperationName::Chat, "m").start();
        llm.span().in_scope(ResponseRef::current)
    })
    .join()
    .unwrap()
    .expect("a response reference from the global subscriber");

    let spans = exporter.get_finished_spans().unwrap();
    let gen = spans.iter().find(|s| s.name == "chat m").unwrap();
    assert_eq!(gen.span_context.span_id(), response.span_id());
    assert_eq!(
        attr_strings(gen, CLOSEDLOOP_CONTEXT_CHUNK_IDS).unwrap(),
        ["a", "b"]
    );
}
