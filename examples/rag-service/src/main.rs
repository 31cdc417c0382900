//! `rag-service`: the instrumented RAG example, exporting spans over OTLP/gRPC.
//!
//! ```text
//! cargo run -p closedloop-example-rag --bin rag-service
//! curl -s localhost:8080/ask -H 'content-type: application/json' \
//!   -d '{"session_id":"s1","query":"How do I reset my password?"}'
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use closedloop_example_rag::{Config, Corpus, OpenAiConfig};
use closedloop_tracing::{ClosedloopLayer, ContentKind};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// A secret for local experiments only; the service warns when it is used.
const DEV_SECRET: &str = "closedloop-dev-secret-do-not-use-in-production";

/// An instrumented RAG HTTP service over a bundled help center.
#[derive(Debug, Parser)]
#[command(name = "rag-service", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "RAG_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// OTLP/gRPC endpoint spans are exported to (the closedloop receiver, a collector, ...).
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        default_value = "http://127.0.0.1:4317"
    )]
    otlp_endpoint: String,
    /// `service.name` of the exported spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "rag-service")]
    service_name: String,
    /// Secret feedback tokens are signed with; give the receiver the same one.
    #[arg(long, env = "CLOSEDLOOP_FEEDBACK_TOKEN_SECRET", hide_env_values = true)]
    feedback_secret: Option<String>,
    /// Export content: queries, prompts, answers and feedback comments. Off by default.
    #[arg(long, env = "RAG_CAPTURE_CONTENT")]
    capture_content: bool,
    /// Serve a directory of Markdown files instead of the bundled help center.
    #[arg(long, env = "RAG_CORPUS_DIR")]
    corpus_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&args.otlp_endpoint)
        .build()
        .context("building the OTLP span exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(args.service_name.clone())
                .build(),
        )
        .build();
    // Feedback spans are recorded through the global provider (FeedbackRecorder::global).
    opentelemetry::global::set_tracer_provider(provider.clone());

    let mut closedloop = ClosedloopLayer::builder();
    if args.capture_content {
        for kind in [
            ContentKind::Query,
            ContentKind::Prompt,
            ContentKind::Output,
            ContentKind::Comment,
        ] {
            closedloop = closedloop.with_capture(kind);
        }
    }
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(tracing_subscriber::fmt::layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("rag-service")))
        .with(closedloop.build())
        .try_init()
        .context("installing the tracing subscriber")?;

    let secret = match args.feedback_secret {
        Some(secret) if !secret.is_empty() => secret,
        _ => {
            tracing::warn!(
                "CLOSEDLOOP_FEEDBACK_TOKEN_SECRET is not set; signing feedback tokens with a \
                 public development secret."
            );
            DEV_SECRET.to_owned()
        }
    };
    let mut config = Config::new(secret.into_bytes());
    if let Some(dir) = &args.corpus_dir {
        let corpus = Corpus::from_dir(dir)
            .with_context(|| format!("loading the corpus from {}", dir.display()))?;
        config = config.with_corpus(corpus);
    }
    let answerer = match OpenAiConfig::from_env() {
        Some(openai) => {
            if openai.base_url.starts_with("https://") && !cfg!(feature = "tls") {
                anyhow::bail!(
                    "OPENAI_BASE_URL is an https URL but rag-service was built without TLS; \
                     rebuild with `--features tls`"
                );
            }
            let label = format!("{} at {}", openai.model, openai.base_url);
            config = config.with_openai(openai);
            label
        }
        None => closedloop_example_rag::EXTRACTIVE_LABEL.to_owned(),
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        %addr,
        otlp_endpoint = %args.otlp_endpoint,
        index_version = config.corpus().version(),
        chunks = config.corpus().chunks().len(),
        %answerer,
        capture_content = args.capture_content,
        "RAG service listening."
    );
    closedloop_example_rag::serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving HTTP")?;

    tracing::info!("Shutting down; flushing spans.");
    provider.shutdown().context("flushing spans")?;
    Ok(())
}
