//! `closedloop-loadgen`: load, ceilings and latencies for the closedloop receiver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use closedloop_loadgen::load::{LoadConfig, Protocol};
use closedloop_loadgen::traces::{Body, TraceBuilder, TraceConfig};
use closedloop_loadgen::{amplify, ceiling, latency, load, scale};
use serde::Serialize;

/// Load generator and benchmarks for the closedloop receiver (and any OTLP trace receiver).
#[derive(Debug, Parser)]
#[command(name = "closedloop-loadgen", version, about)]
struct Cli {
    /// Tokio worker threads of the generator.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sends realistic LLM traces to an OTLP receiver and reports spans/s and latency.
    Run(RunArgs),
    /// Decodes the same requests with prost on one thread: the decode-only ceiling.
    DecodeCeiling(CeilingArgs),
    /// Feedback accepted → failure record at a local OTLP sink, idle and under load.
    FeedbackLatency(LatencyArgs),
    /// Join latency and bytes per indexed response at growing store sizes (in process).
    StoreScale(ScaleArgs),
    /// Sends one request that is small on the wire and large once decoded.
    Amplify(AmplifyArgs),
}

#[derive(Debug, Args)]
struct AmplifyArgs {
    /// The input to send.
    #[arg(long, value_enum)]
    input: amplify::Input,
    /// The receiver's OTLP/HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    http_endpoint: String,
    /// The receiver's OTLP/gRPC URL.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    grpc_endpoint: String,
    /// Empty attributes (or innermost empty values of json-gzip).
    #[arg(long, default_value_t = 10_000_000)]
    count: usize,
    /// Nesting depth of json-gzip.
    #[arg(long, default_value_t = 38)]
    depth: usize,
    /// Requests sent at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

#[derive(Debug, Args)]
struct TraceArgs {
    /// Seed of the generated traces.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Spans per request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Distinct request bodies generated up front and replayed (with fresh trace and span ids).
    #[arg(long, default_value_t = 512)]
    pool: usize,
    /// Share of responses that get feedback.
    #[arg(long, default_value_t = 0.20)]
    feedback_ratio: f64,
    /// Share of responses that get negative feedback (part of the feedback share).
    #[arg(long, default_value_t = 0.05)]
    negative_ratio: f64,
}

impl TraceArgs {
    fn bodies(&self) -> Vec<Body> {
        TraceBuilder::new(TraceConfig {
            seed: self.seed,
            batch_spans: self.batch_size,
            feedback_ratio: self.feedback_ratio,
            negative_ratio: self.negative_ratio,
        })
        .bodies(self.pool.max(1))
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The receiver: its gRPC port for `grpc`, its HTTP port for `http`.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// The OTLP transport.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    /// Spans per second; 0 sends as fast as the receiver answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// gRPC connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Seconds to send, warm-up included.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Seconds at the start whose requests are not counted.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    #[command(flatten)]
    traces: TraceArgs,
}

#[derive(Debug, Args)]
struct CeilingArgs {
    /// Seconds to decode.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[command(flatten)]
    traces: TraceArgs,
}

#[derive(Debug, Args)]
struct LatencyArgs {
    /// The receiver's OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Where the OTLP/gRPC sink listens: the receiver's export endpoint.
    #[arg(long, default_value = "127.0.0.1:4319")]
    sink_addr: SocketAddr,
    /// Probes per phase.
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Milliseconds between probes.
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Background load of the second phase, spans/s (none: idle phase only).
    #[arg(long)]
    load_rate: Option<f64>,
    /// Requests in flight of the background load.
    #[arg(long, default_value_t = 8)]
    load_concurrency: usize,
    /// Spans per background request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Seconds a probe waits for its failure record.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Seed of the probe and load traces.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    /// Directory for the store file (created; must not hold `scale.db`).
    #[arg(long)]
    dir: PathBuf,
    /// Indexed-response counts to measure at.
    #[arg(long, value_delimiter = ',', default_value = "100000,10000000")]
    checkpoints: Vec<u64>,
    /// Seconds of indexing after which the run stops at the next 250K boundary and measures.
    #[arg(long, default_value_t = 600)]
    budget_secs: u64,
    /// Generation spans per ingest request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Ingest requests in flight.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Feedback items timed per checkpoint.
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Seed of ids and attributes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn print<T: Serialize>(
    json: bool,
    report: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{}", text(report));
    }
    Ok(())
}

fn salt() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        | 1
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(match cli.command {
            Command::StoreScale(_) => std::thread::available_parallelism().map_or(2, usize::from),
            _ => cli.threads.max(1),
        })
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    match cli.command {
        Command::Run(args) => {
            let bodies = Arc::new(args.traces.bodies());
            let config = LoadConfig {
                endpoint: args.endpoint,
                protocol: args.protocol,
                rate_spans_per_sec: (args.rate > 0.0).then_some(args.rate),
                concurrency: args.concurrency,
                connections: args.connections,
                duration: Duration::from_secs(args.duration_secs),
                warmup: Duration::from_secs(args.warmup_secs.min(args.duration_secs)),
                salt: salt(),
            };
            let report = runtime.block_on(load::run(&config, bodies, None))?;
            print(cli.json, &report, load::LoadReport::text)
        }
        Command::DecodeCeiling(args) => {
            let bodies = args.traces.bodies();
            let report = ceiling::run(&bodies, Duration::from_secs(args.duration_secs));
            print(cli.json, &report, ceiling::CeilingReport::text)
        }
        Command::FeedbackLatency(args) => {
            let config = latency::LatencyConfig {
                endpoint: args.endpoint,
                probes: args.probes,
                interval: Duration::from_millis(args.interval_ms),
                load_rate: args.load_rate.filter(|rate| *rate > 0.0),
                load_concurrency: args.load_concurrency,
                seed: args.seed ^ salt(),
                batch_spans: args.batch_size,
                timeout: Duration::from_secs(args.timeout_secs),
            };
            let report = runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(args.sink_addr)
                    .await
                    .with_context(|| format!("cannot bind the sink on {}", args.sink_addr))?;
                latency::run(&config, listener).await
            })?;
            print(cli.json, &report, latency::LatencyReport::text)
        }
        Command::StoreScale(args) => {
            let config = scale::ScaleConfig {
                dir: args.dir,
                checkpoints: args.checkpoints,
                budget: Duration::from_secs(args.budget_secs),
                batch_spans: args.batch_size,
                in_flight: args.in_flight,
                probes: args.probes,
                seed: args.seed,
            };
            let report = runtime.block_on(scale::run(&config))?;
            print(cli.json, &report, scale::ScaleReport::text)
        }
        Command::Amplify(args) => {
            let config = amplify::AmplifyConfig {
                input: args.input,
                http_endpoint: args.http_endpoint,
                grpc_endpoint: args.grpc_endpoint,
                count: args.count,
                depth: args.depth,
                concurrency: args.concurrency,
            };
            let report = runtime.block_on(amplify::run(&config))?;
            print(cli.json, &report, amplify::AmplifyReport::text)
        }
    }
}
