//! `closedloop-demo`: the whole loop on one machine, in under a minute.
//!
//! 1. starts the closedloop receiver on a fresh embedded store (`closedloop-data/demo.db`);
//! 2. starts the instrumented RAG example service, exporting its spans to the receiver;
//! 3. runs simulated users against it: satisfied ones, thumbs-down givers, rephrasers and
//!    abandoners;
//! 4. prints what the receiver made of it: the failure records, the per-template report, and
//!    where the eval set was written;
//! 5. draws today's review sample (the receiver draws each day's once the day is over), so the
//!    review queue has answers waiting;
//! 6. with `--serve`, keeps the receiver running (ingest, the feedback API and the console
//!    under `/ui/` on its HTTP listener) until Ctrl-C, and prints the console's address.
//!
//! Failure records are exported over OTLP to `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set (a
//! local Jaeger or Tempo, say); otherwise to an in-process backend that only counts them. The
//! simulated users' queries and the answers are captured (they are nobody's personal data),
//! so reviewers can read them; the demo turns `store.store_content` on (off by default) and the
//! store keeps them as `store.content_retention` says.
//!
//! ```text
//! cargo run --release -p closedloop-demo [-- --serve]
//! ```

mod sink;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use closedloop_commands::review::{self, ReviewConfig, ReviewFilter};
use closedloop_commands::{evalset, report, triage};
use closedloop_example_traffic::SimConfig;
use closedloop_receiver::{Config, ExportProtocol, Listeners, Pipeline, Receiver};
use closedloop_store::ContentRetention;
use closedloop_tracing::{ClosedloopLayer, ContentKind};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use rand::RngCore as _;
use tokio::net::TcpListener;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;

use crate::sink::CountingBackend;

/// The receiver's configuration for the demo (short detector windows, triage rules).
const DEMO_CONFIG: &str = include_str!("../demo.toml");

/// How long the abandon detector waits in the demo (`demo.toml`), plus its check interval.
const ABANDON_SETTLE: Duration = Duration::from_secs(5);

/// Runs the closedloop receiver, an instrumented RAG service and simulated users, then shows
/// the failure records, the per-template report and the eval set.
#[derive(Debug, Parser)]
#[command(name = "closedloop-demo", version)]
struct Args {
    /// The demo's store; deleted and created afresh on every run.
    #[arg(long, default_value = "closedloop-data/demo.db")]
    store_path: PathBuf,
    /// Simulated user sessions.
    #[arg(long, default_value_t = 80)]
    sessions: usize,
    /// Seed of the simulated users (the same seed gives the same sessions) and of today's
    /// review sample.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// After the simulation, keep the receiver running (OTLP ingest, the feedback API and the
    /// console under `/ui/`) until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// The embedding model the receiver judges rephrasings by meaning with; default: the one
    /// `scripts/embedding-model.sh` installs (`target/models`), when it is there.
    #[arg(long, env = "CLOSEDLOOP_EMBEDDING_MODEL_DIR")]
    embedding_model_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    fresh_store(&args.store_path)?;

    // One secret shared by the service (signs feedback tokens) and the receiver (checks them).
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);

    // Where failure records go: the user's backend, or a counting stand-in.
    let backend = CountingBackend::default();
    let export_endpoint = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => {
            let addr = backend.serve(TcpListener::bind("127.0.0.1:0").await?)?;
            format!("http://{addr}")
        }
    };

    // 1. The receiver, on loopback ports chosen by the OS.
    let mut config = Config::from_toml(DEMO_CONFIG).context("parsing demo.toml")?;
    config.store.path = args.store_path.clone();
    config.feedback.token_secret = Some(secret.clone().into());
    config.export.endpoint = Some(export_endpoint.clone());
    config.export.protocol = Some(ExportProtocol::Grpc);
    config.export.use_env = false;
    let embedding_model = args
        .embedding_model_dir
        .clone()
        .or_else(|| closedloop_embed::find_model_dir(&[PathBuf::from("target/models")]));
    config.detectors.rephrase.embedding_model_dir = embedding_model.clone();
    let review_config = config.review.clone();
    let retention = config.store.content_retention;
    let pipeline = Pipeline::start(config.pipeline())
        .await
        .context("starting the receiver's pipeline")?;
    let listeners = Listeners {
        grpc: TcpListener::bind("127.0.0.1:0").await?,
        http: TcpListener::bind("127.0.0.1:0").await?,
        feedback: None,
        ui: None,
    };
    let receiver_grpc = listeners.grpc.local_addr()?;
    let receiver_http = listeners.http.local_addr()?;
    let (stop_receiver, receiver_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut receiver = tokio::spawn(
        Receiver::builder(config)
            .with_pipeline(pipeline.clone())
            .build()
            .serve(listeners, async {
                let _ = receiver_stopped.await;
            }),
    );

    // 2. The RAG service, instrumented with tracing-opentelemetry + ClosedloopLayer.
    let provider = tracer_provider(&format!("http://{receiver_grpc}"))?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    tracing_subscriber::registry()
        // The filter applies to log output only: every span must still reach OpenTelemetry.
        .with(tracing_subscriber::fmt::layer().with_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        ))
        // The receiver runs in this process too: only the service's spans may go to
        // OpenTelemetry, or the receiver's own spans would be exported to itself, forever.
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("rag-service"))
                .with_filter(service_spans()),
        )
        // Simulated users' queries and the answers are nobody's personal data: captured, so
        // the review queue shows what a reviewer reads.
        .with(
            ClosedloopLayer::builder()
                .with_capture(ContentKind::Query)
                .with_capture(ContentKind::Output)
                .build()
                .with_filter(service_spans()),
        )
        .try_init()
        .context("installing the tracing subscriber")?;
    let service = TcpListener::bind("127.0.0.1:0").await?;
    let service_addr = service.local_addr()?;
    let rag_config = closedloop_example_rag::Config::new(secret.into_bytes());
    let (stop_service, service_stopped) = tokio::sync::oneshot::channel::<()>();
    let service_task = tokio::spawn(closedloop_example_rag::serve(service, rag_config, async {
        let _ = service_stopped.await;
    }));

    println!("closedloop demo");
    println!(
        "  receiver   OTLP/gRPC {receiver_grpc}, HTTP {receiver_http}, store {}",
        args.store_path.display()
    );
    println!(
        "  service    http://{service_addr} (RAG over a bundled help center, {})",
        closedloop_example_rag::EXTRACTIVE_LABEL
    );
    println!("  records to {export_endpoint}");
    match &embedding_model {
        Some(dir) => println!(
            "  rephrase   judged by words and meaning (the receiver embeds queries with {})",
            dir.display()
        ),
        None => println!(
            "  rephrase   judged by words only (scripts/embedding-model.sh installs the model that \
             adds meaning)"
        ),
    }

    // 3. Simulated users.
    let mut sim = SimConfig::new(format!("http://{service_addr}"));
    sim.sessions = args.sessions;
    sim.seed = args.seed;
    let summary = closedloop_example_traffic::run(&sim)
        .await
        .context("running the simulated users")?;
    println!("\nSimulated users\n{summary}");

    // Deliver the last spans and give the join and the exporter a moment to settle.
    flush(&provider).context("flushing the service's spans")?;
    println!("Waiting for quiet sessions to count as abandoned...");
    tokio::time::sleep(ABANDON_SETTLE).await;
    settle(&pipeline).await;

    let stats = pipeline.stats();
    println!(
        "\nReceiver: {} spans accepted, {} feedback items, {} failure records, {} record spans exported ({} pending)",
        stats.spans_accepted,
        stats.feedback_recorded,
        stats.failure_records,
        stats.export_sent,
        stats.export_pending,
    );
    if backend.spans() > 0 {
        println!(
            "In-process OTLP backend received {} failure-record spans.",
            backend.spans()
        );
    }

    let _ = stop_service.send(());
    service_task.await??;
    provider
        .shutdown()
        .context("shutting down the tracer provider")?;
    if !args.serve {
        let _ = stop_receiver.send(());
        receiver.await??;
        print_outcome(&args, &review_config, retention)?;
        println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
        return Ok(());
    }
    print_outcome(&args, &review_config, retention)?;
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    println!("\nConsole: http://{receiver_http}/ui/");
    println!(
        "The receiver keeps running: OTLP/gRPC {receiver_grpc}, OTLP/HTTP and the feedback API \
         on http://{receiver_http}. Ctrl-C stops it."
    );
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => stopped.context("waiting for Ctrl-C")?,
        // The receiver stopped by itself: its error says why.
        ended = &mut receiver => return Ok(ended??),
    }
    let _ = stop_receiver.send(());
    receiver.await??;
    println!(
        "Receiver stopped; the store stays in {}.",
        args.store_path.display()
    );
    Ok(())
}

/// The spans of the RAG service and of closedloop-tracing's helpers, and nothing else.
fn service_spans() -> Targets {
    Targets::new()
        .with_target("closedloop_example_rag", Level::TRACE)
        .with_target("closedloop_tracing", Level::TRACE)
}

/// Prints the failure records and the per-template report, writes the eval set and the
/// report next to the store, and draws today's review sample.
fn print_outcome(
    args: &Args,
    review_config: &ReviewConfig,
    retention: ContentRetention,
) -> anyhow::Result<()> {
    let store = &args.store_path;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let store_config = closedloop_store::StoreConfig {
        path: store.clone(),
        content_retention: retention,
        ..closedloop_store::StoreConfig::default()
    };
    let conn =
        &mut closedloop_store::Connection::open(&store_config, closedloop_store::Access::Command)
            .context("opening the store")?;
    let records = triage::list(conn, &triage::ListFilter::new(now_s))
        .context("listing the failure records")?;

    println!("\nFailure records by signal");
    let mut by_signal: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        for signal in &record.signals {
            *by_signal.entry(signal.clone()).or_default() += 1;
        }
    }
    for (signal, count) in &by_signal {
        println!("  {signal:<12} {count}");
    }

    println!("\nFailure records ({}; the first 12)", records.len());
    println!(
        "  id         category             stage      severity signals                  owner         due"
    );
    for record in records.iter().take(12) {
        println!(
            "  {:<10} {:<20} {:<10} {:<8} {:<24} {:<13} {}",
            short_id(&record.id),
            record.category,
            record.stage,
            record.severity,
            record.signals.join(","),
            record.owner.as_deref().unwrap_or("-"),
            record.due_time.as_deref().unwrap_or("-"),
        );
    }

    // Both versions serve traffic at once (an A/B split), so say which one is the candidate.
    let query = report::ReportQuery {
        compare: report::TemplateVersion::parse("help_center_answer@v1")
            .zip(report::TemplateVersion::parse("help_center_answer@v2")),
        ..report::ReportQuery::default()
    };
    let report = report::report(conn, &query).context("computing the report")?;
    println!("\n{}", report::render(&report));

    let dir = store.parent().unwrap_or_else(|| Path::new("."));
    let report_path = dir.join("demo-report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    let cases =
        evalset::cases(conn, &evalset::EvalsetQuery::default()).context("building the eval set")?;
    let evalset_path = dir.join("demo-evalset.jsonl");
    std::fs::write(&evalset_path, evalset::to_jsonl(&cases))
        .with_context(|| format!("writing {}", evalset_path.display()))?;
    println!(
        "Eval set: {} cases from {} failure records in {}",
        cases.len(),
        records.len(),
        evalset_path.display()
    );
    println!("Report as JSON: {}", report_path.display());

    // The receiver samples a day once it is over; the demo's traffic is all today's, so today's
    // sample is drawn now. The receiver's own sampling later finds the day drawn.
    let today = now_s.div_euclid(86_400);
    let sample = review::sample_day(conn, review_config, retention, today, Some(args.seed))
        .context("drawing today's review sample")?;
    let waiting = review::list(
        conn,
        &ReviewFilter {
            day: Some(sample.day.clone()),
            unlabelled: true,
        },
    )
    .context("listing the review queue")?;
    println!(
        "Review queue: {} answers of today's {} waiting for review (sample of {}, seed {}).",
        waiting.len(),
        sample.population,
        sample.day,
        sample.seed
    );
    println!(
        "Explore further:\n  cargo run --release -p closedloop-cli -- triage list --store-path {0}\n  \
         cargo run --release -p closedloop-cli -- report --store-path {0}\n  \
         cargo run --release -p closedloop-cli -- review list --unlabelled --store-path {0}",
        store.display()
    );
    Ok(())
}

/// The first characters of a failure id, enough to tell records apart on screen.
fn short_id(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

/// Deletes the demo store (and its WAL files) so every run starts from nothing.
fn fresh_store(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("removing {}", path.display()));
            }
        }
    }
    Ok(())
}

/// Waits until the provider's spans are exported. The SDK gives up waiting on a flush after
/// five seconds while the export goes on (a receiver embedding queries on a busy machine can
/// take longer); a timed-out flush is asked again, for up to a minute.
fn flush(provider: &SdkTracerProvider) -> Result<(), opentelemetry_sdk::error::OTelSdkError> {
    const ATTEMPTS: usize = 12;
    for _ in 1..ATTEMPTS {
        match provider.force_flush() {
            Err(opentelemetry_sdk::error::OTelSdkError::Timeout(_)) => continue,
            other => return other,
        }
    }
    provider.force_flush()
}

/// A tracer provider exporting to the receiver with a short batch delay, so the demo does not
/// wait on the default five-second schedule.
fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .context("building the OTLP span exporter")?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(200))
                .build(),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(Resource::builder().with_service_name("rag-service").build())
        .build())
}

/// Waits until the receiver's counters stop moving and the outbox is empty (at most 20 s).
async fn settle(pipeline: &Pipeline) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = pipeline.stats();
        let now = (
            stats.feedback_recorded,
            stats.failure_records,
            stats.export_sent,
        );
        if stats.export_pending == 0 && last == Some(now) {
            return;
        }
        last = Some(now);
    }
}
