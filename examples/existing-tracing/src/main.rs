//! Adding closedloop to an app that already exports `tracing` spans to OpenTelemetry.
//!
//! Everything below marked `closedloop:` is the whole change. The rest is the tracing setup such
//! an app already has: a `Registry`, a `fmt` layer for logs, and an `OpenTelemetryLayer`
//! exporting over OTLP.
//!
//! ```text
//! closedloop serve &                        # or any OTLP endpoint
//! cargo run -p closedloop-example-existing-tracing
//! ```

use anyhow::Context as _;
use closedloop_semconv::attribute::{FailureCategory, FeedbackSignal, GenAiOperationName};
use closedloop_tracing::{generation, record_feedback, request, ClosedloopLayer, Feedback};
use closedloop_tracing::{retrieval, PromptTemplate};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4317".to_owned());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&endpoint)
        .build()
        .context("building the OTLP exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("existing-app")
                .build(),
        )
        .build();
    // closedloop: record_feedback uses the global provider.
    opentelemetry::global::set_tracer_provider(provider.clone());

    // The existing setup, plus one line:
    //
    //    tracing_subscriber::registry()
    //        .with(EnvFilter::new("info"))
    //        .with(tracing_subscriber::fmt::layer())
    //        .with(tracing_opentelemetry::layer().with_tracer(tracer))
    //  + .with(ClosedloopLayer::new())
    //        .init();
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(tracing_subscriber::fmt::layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("existing-app")))
        .with(ClosedloopLayer::new()) // closedloop: the one-line diff.
        .try_init()
        .context("installing the subscriber")?;

    let response = handle_question("sess-42", "How do I rotate an API key?");
    if let Some(response) = &response {
        // Hand this to the client with the answer (here: print it).
        println!("{}", serde_json::to_string(response)?);
        // Later the user clicks thumbs down; the feedback span lands in the answer's trace.
        record_feedback(
            response,
            Feedback::new(FeedbackSignal::ThumbsDown)
                .with_category(FailureCategory::MissingContext)
                .with_session_id("sess-42"),
        )
        .context("recording feedback")?;
    }

    provider.shutdown().context("flushing spans")?;
    Ok(())
}

/// An existing request handler: its own spans stay as they are.
#[tracing::instrument(skip(query))]
fn handle_question(session_id: &str, query: &str) -> Option<closedloop_tracing::ResponseRef> {
    // closedloop (optional): who asked what, copied onto the generation span below. The query
    // is fingerprinted; its text is only exported if content capture is turned on.
    let turn = request("answer")
        .with_session_id(session_id)
        .with_query(query)
        .start();
    let _turn = turn.enter();

    // closedloop (optional): which chunks the answer was built from.
    let docs = ["kb-api-keys#1", "kb-api-keys#0"];
    let search = retrieval("kb").with_index_version("2026-11-20").start();
    search.record_chunks(docs, Some(&[0.71, 0.44]));
    drop(search);

    // closedloop: the one generation span. Template, chunks, session and query fingerprint are
    // filled in by the layer.
    let llm = generation(GenAiOperationName::Chat, "gpt-4o-mini")
        .with_provider("openai")
        .start();
    let _llm = llm.span().enter();
    let template = PromptTemplate::new("answer", "Context:\n{context}\n\nQuestion: {question}");
    let _prompt = template
        .render(&[("context", "…"), ("question", query)])
        .ok()?;
    // … call the model as before …
    llm.record_usage(420, 58);
    tracing::info!("Answered.");
    llm.response_ref()
}
