//! Feedback → exported failure record latency.
//!
//! A probe sends one answer's trace, waits for the OK, then sends a negative feedback span
//! linked to its generation span. The clock starts when the feedback request is answered OK
//! and stops when the failure record (a span in the judged trace) reaches the sink this
//! process serves, which is the receiver's export endpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde::Serialize;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

use crate::load::{self, LoadConfig, LoadReport, Protocol};
use crate::sink::{self, Sink};
use crate::stats::Percentiles;
use crate::traces::{self, Body, TraceBuilder, TraceConfig};

/// What to measure.
#[derive(Clone, Debug)]
pub struct LatencyConfig {
    /// The receiver's OTLP/gRPC endpoint.
    pub endpoint: String,
    /// Probes per phase.
    pub probes: usize,
    /// Pause between probes.
    pub interval: Duration,
    /// Background load for the second phase, spans per second (none: idle phase only).
    pub load_rate: Option<f64>,
    /// Requests in flight of the background load.
    pub load_concurrency: usize,
    /// The seed of the probe and load traces.
    pub seed: u64,
    /// Spans per background request.
    pub batch_spans: usize,
    /// How long a probe waits for its record before counting it as lost.
    pub timeout: Duration,
}

/// One phase's result.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// Feedback accepted → record at the sink.
    pub latency: Percentiles,
    /// Probes whose record did not arrive within the timeout.
    pub lost: usize,
    /// Probes whose record arrived before the feedback request's OK reached the client
    /// (counted as 0 ms).
    pub before_ack: usize,
    /// The background load, when there was one.
    pub load: Option<LoadReport>,
}

/// Both phases.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    /// No other traffic.
    pub idle: Phase,
    /// Under the background load.
    pub loaded: Option<Phase>,
}

async fn probe_phase(
    client: &mut TraceServiceClient<Channel>,
    sink: &Sink,
    builder: &mut TraceBuilder,
    config: &LatencyConfig,
) -> anyhow::Result<Phase> {
    let mut samples = Vec::with_capacity(config.probes);
    let (mut lost, mut before_ack) = (0, 0);
    for _ in 0..config.probes {
        let (spans, judged, session, user) = builder.trace();
        client
            .export(traces::request(spans))
            .await
            .context("the probe trace was refused")?;
        let feedback = builder.feedback_span(judged, true, session, user);
        let arrival = sink.watch(&judged.trace_id);
        client
            .export(traces::request(vec![feedback]))
            .await
            .context("the probe feedback was refused")?;
        let accepted = Instant::now();
        match tokio::time::timeout(config.timeout, arrival).await {
            Ok(Ok(arrived)) => {
                if arrived < accepted {
                    before_ack += 1;
                }
                samples.push(arrived.saturating_duration_since(accepted).as_micros() as u64);
            }
            _ => lost += 1,
        }
        tokio::time::sleep(config.interval).await;
    }
    Ok(Phase {
        latency: Percentiles::from_micros(samples),
        lost,
        before_ack,
        load: None,
    })
}

/// Serves the sink on `sink_listener` and runs the idle phase, then (with `load_rate`) the
/// loaded phase.
pub async fn run(
    config: &LatencyConfig,
    sink_listener: TcpListener,
) -> anyhow::Result<LatencyReport> {
    let (sink, sink_task) = sink::serve(sink_listener);
    let endpoint = Endpoint::from_shared(config.endpoint.clone())
        .context("invalid endpoint")?
        .tcp_nodelay(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let channel = loop {
        match endpoint.connect().await {
            Ok(channel) => break channel,
            Err(error) if Instant::now() >= deadline => {
                return Err(error).context("cannot connect to the receiver")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut client = TraceServiceClient::new(channel);
    let mut builder = TraceBuilder::new(TraceConfig {
        seed: config.seed ^ 0x9e37_79b9_7f4a_7c15,
        ..TraceConfig::default()
    });
    let idle = probe_phase(&mut client, &sink, &mut builder, config).await?;

    let loaded = match config.load_rate {
        None => None,
        Some(rate) => {
            let bodies: Arc<Vec<Body>> = Arc::new(
                TraceBuilder::new(TraceConfig {
                    seed: config.seed,
                    batch_spans: config.batch_spans,
                    ..TraceConfig::default()
                })
                .bodies(256),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let warmup = Duration::from_secs(2);
            let load_config = LoadConfig {
                endpoint: config.endpoint.clone(),
                protocol: Protocol::Grpc,
                rate_spans_per_sec: Some(rate),
                concurrency: config.load_concurrency,
                connections: 2,
                // Ended by `stop` once the probes are done.
                duration: Duration::from_secs(3_600),
                warmup,
                salt: config.seed.rotate_left(17) | 1,
            };
            let load = {
                let stop = Arc::clone(&stop);
                tokio::spawn(async move { load::run(&load_config, bodies, Some(stop)).await })
            };
            tokio::time::sleep(warmup + Duration::from_secs(1)).await;
            let phase = probe_phase(&mut client, &sink, &mut builder, config).await;
            stop.store(true, Ordering::Relaxed);
            let load = load.await.context("load task failed")??;
            let mut phase = phase?;
            phase.load = Some(load);
            Some(phase)
        }
    };
    sink_task.abort();
    Ok(LatencyReport { idle, loaded })
}

impl LatencyReport {
    /// A human-readable summary.
    pub fn text(&self) -> String {
        let line = |name: &str, phase: &Phase| {
            format!(
                "{name:<8} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} probes, {} lost, {} before ack)",
                phase.latency.p50_ms,
                phase.latency.p90_ms,
                phase.latency.p99_ms,
                phase.latency.max_ms,
                phase.latency.count,
                phase.lost,
                phase.before_ack
            )
        };
        let mut out = line("idle", &self.idle);
        if let Some(loaded) = &self.loaded {
            out.push('\n');
            out.push_str(&line("loaded", loaded));
            if let Some(load) = &loaded.load {
                out.push_str(&format!(
                    "\n         background load {:.0} spans/s accepted (target {:.0}), {} failed requests",
                    load.spans_per_sec,
                    load.target_spans_per_sec.unwrap_or_default(),
                    load.requests_failed
                ));
            }
        }
        out
    }
}
