//! Sending pre-encoded OTLP requests over gRPC or HTTP, at a rate or as fast as the receiver
//! answers, and measuring what came back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde::Serialize;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::stats::{process_cpu_secs, Percentiles};
use crate::traces::Body;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP with a protobuf body (`POST /v1/traces`).
    Http,
}

/// How to send.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// `http://host:port` of the receiver (gRPC or HTTP port, by `protocol`).
    pub endpoint: String,
    /// The transport.
    pub protocol: Protocol,
    /// Target spans per second; `None` sends as fast as responses come back.
    pub rate_spans_per_sec: Option<f64>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// gRPC connections (HTTP/2 multiplexes the requests of one connection).
    pub connections: usize,
    /// How long to send, warm-up included.
    pub duration: Duration,
    /// The first part of `duration` whose requests are not counted.
    pub warmup: Duration,
    /// XORed into trace ids (plus the replay count) so that runs never repeat a span.
    pub salt: u64,
}

/// What a run achieved, counting requests started after the warm-up.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// The transport.
    pub protocol: Option<Protocol>,
    /// The rate asked for, spans per second (`null`: unlimited).
    pub target_spans_per_sec: Option<f64>,
    /// Measured seconds.
    pub elapsed_secs: f64,
    /// Requests answered OK.
    pub requests_ok: u64,
    /// Requests answered with an error status (or not answered).
    pub requests_failed: u64,
    /// Spans in the requests sent.
    pub spans_sent: u64,
    /// Spans accepted: in OK requests, minus partial-success rejections.
    pub spans_accepted: u64,
    /// Spans the receiver rejected through OTLP partial success.
    pub spans_rejected: u64,
    /// Spans in requests that failed as a whole.
    pub spans_failed: u64,
    /// Accepted spans per second.
    pub spans_per_sec: f64,
    /// Mean encoded bytes per span.
    pub bytes_per_span: f64,
    /// Mean spans per request.
    pub spans_per_request: f64,
    /// Request latency, send to answer.
    pub latency: Percentiles,
    /// CPU seconds the generator itself used (whole run, warm-up included).
    pub generator_cpu_secs: Option<f64>,
    /// Wall seconds of the whole run.
    pub generator_wall_secs: f64,
    /// Up to three distinct errors.
    pub errors: Vec<String>,
}

/// Passes pre-encoded request bytes through untouched and decodes the response.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

#[derive(Clone, Copy, Debug, Default)]
struct RawEncoder;

#[derive(Clone, Copy, Debug, Default)]
struct ResponseDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|error| Status::internal(error.to_string()))
    }
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const TRACES_PATH: &str = "/v1/traces";

/// One client of the receiver.
#[derive(Clone, Debug)]
enum Client {
    Grpc(tonic::client::Grpc<Channel>),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

impl Client {
    /// Sends one request; the number of spans rejected through partial success.
    async fn send(&mut self, body: Vec<u8>) -> Result<i64, String> {
        let response = match self {
            Client::Grpc(grpc) => {
                grpc.ready().await.map_err(|error| error.to_string())?;
                grpc.unary(
                    tonic::Request::new(Bytes::from(body)),
                    PathAndQuery::from_static(EXPORT_PATH),
                    RawCodec,
                )
                .await
                .map_err(|status| format!("grpc {:?}: {}", status.code(), status.message()))?
                .into_inner()
            }
            Client::Http { client, url } => {
                let response = client
                    .post(url.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| error.to_string())?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|error| error.to_string())?;
                if !status.is_success() {
                    return Err(format!("http {}", status.as_u16()));
                }
                ExportTraceServiceResponse::decode(bytes).map_err(|error| error.to_string())?
            }
        };
        Ok(response
            .partial_success
            .map_or(0, |partial| partial.rejected_spans))
    }
}

/// Connects `count` clients, retrying for up to `wait` while the receiver starts.
async fn clients(config: &LoadConfig, wait: Duration) -> anyhow::Result<Vec<Client>> {
    let deadline = Instant::now() + wait;
    match config.protocol {
        Protocol::Grpc => {
            let endpoint = Endpoint::from_shared(config.endpoint.clone())
                .context("invalid endpoint")?
                .tcp_nodelay(true);
            let mut clients = Vec::new();
            for _ in 0..config.connections.max(1) {
                let channel = loop {
                    match endpoint.connect().await {
                        Ok(channel) => break channel,
                        Err(error) if Instant::now() >= deadline => {
                            return Err(error).context("cannot connect to the receiver");
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                };
                clients.push(Client::Grpc(
                    tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20),
                ));
            }
            Ok(clients)
        }
        Protocol::Http => {
            let client = reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(config.concurrency.max(1))
                .build()
                .context("cannot build the HTTP client")?;
            let base = config.endpoint.trim_end_matches('/');
            let url = format!("{base}{TRACES_PATH}");
            let authority = base
                .strip_prefix("http://")
                .context("the endpoint must start with http://")?
                .to_owned();
            // Wait until the port answers.
            loop {
                match tokio::net::TcpStream::connect(&authority).await {
                    Ok(_) => break,
                    Err(error) if Instant::now() >= deadline => {
                        return Err(error).context("cannot connect to the receiver");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            Ok(vec![Client::Http { client, url }])
        }
    }
}

#[derive(Debug, Default)]
struct WorkerTally {
    latencies_us: Vec<u64>,
    requests_ok: u64,
    requests_failed: u64,
    spans_sent: u64,
    spans_rejected: u64,
    spans_failed: u64,
    bytes_sent: u64,
    last_done: Option<Instant>,
    errors: Vec<String>,
}

/// Sends `bodies` round-robin (each replay with a new salt) for `config.duration`, or until
/// `stop` is set.
pub async fn run(
    config: &LoadConfig,
    bodies: Arc<Vec<Body>>,
    stop: Option<Arc<AtomicBool>>,
) -> anyhow::Result<LoadReport> {
    if bodies.is_empty() {
        bail!("no request bodies");
    }
    let clients = clients(config, Duration::from_secs(30)).await?;
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let counted_from = started + config.warmup;
    let end = started + config.duration;
    let mean_spans =
        bodies.iter().map(|body| body.spans).sum::<usize>() as f64 / bodies.len() as f64;
    let interval = config
        .rate_spans_per_sec
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(mean_spans / rate));
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..config.concurrency.max(1) {
        let mut client = clients[worker % clients.len()].clone();
        let bodies = Arc::clone(&bodies);
        let next = Arc::clone(&next);
        let stop = stop.clone();
        let salt = config.salt;
        workers.push(tokio::spawn(async move {
            let mut tally = WorkerTally::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if let Some(interval) = interval {
                    let due = started + interval.mul_f64(index as f64);
                    if due >= end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent_at = Instant::now();
                if sent_at >= end
                    || stop
                        .as_ref()
                        .is_some_and(|stop| stop.load(Ordering::Relaxed))
                {
                    break;
                }
                let len = bodies.len() as u64;
                let body = &bodies[(index % len) as usize];
                let bytes = body.salted(salt.wrapping_add(index / len));
                let size = bytes.len() as u64;
                let result = client.send(bytes).await;
                let done = Instant::now();
                if sent_at < counted_from {
                    continue;
                }
                let spans = body.spans as u64;
                tally.spans_sent += spans;
                tally.bytes_sent += size;
                tally.last_done = Some(done);
                match result {
                    Ok(rejected) => {
                        tally.requests_ok += 1;
                        tally.spans_rejected += rejected.max(0) as u64;
                        tally
                            .latencies_us
                            .push(done.duration_since(sent_at).as_micros() as u64);
                    }
                    Err(error) => {
                        tally.requests_failed += 1;
                        tally.spans_failed += spans;
                        if tally.errors.len() < 3 && !tally.errors.contains(&error) {
                            tally.errors.push(error);
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut total = WorkerTally::default();
    for worker in workers {
        let tally = worker.await.context("load worker failed")?;
        total.latencies_us.extend(tally.latencies_us);
        total.requests_ok += tally.requests_ok;
        total.requests_failed += tally.requests_failed;
        total.spans_sent += tally.spans_sent;
        total.spans_rejected += tally.spans_rejected;
        total.spans_failed += tally.spans_failed;
        total.bytes_sent += tally.bytes_sent;
        total.last_done = total.last_done.max(tally.last_done);
        for error in tally.errors {
            if total.errors.len() < 3 && !total.errors.contains(&error) {
                total.errors.push(error);
            }
        }
    }
    let generator_wall_secs = started.elapsed().as_secs_f64();
    let generator_cpu_secs = cpu_before
        .zip(process_cpu_secs())
        .map(|(before, after)| after - before);
    let elapsed_secs = total
        .last_done
        .map_or(0.0, |done| done.duration_since(counted_from).as_secs_f64());
    let spans_accepted = total.spans_sent - total.spans_failed - total.spans_rejected;
    let requests = total.requests_ok + total.requests_failed;
    Ok(LoadReport {
        protocol: Some(config.protocol),
        target_spans_per_sec: config.rate_spans_per_sec,
        elapsed_secs,
        requests_ok: total.requests_ok,
        requests_failed: total.requests_failed,
        spans_sent: total.spans_sent,
        spans_accepted,
        spans_rejected: total.spans_rejected,
        spans_failed: total.spans_failed,
        spans_per_sec: if elapsed_secs > 0.0 {
            spans_accepted as f64 / elapsed_secs
        } else {
            0.0
        },
        bytes_per_span: total.bytes_sent as f64 / total.spans_sent.max(1) as f64,
        spans_per_request: total.spans_sent as f64 / requests.max(1) as f64,
        latency: Percentiles::from_micros(total.latencies_us),
        generator_cpu_secs,
        generator_wall_secs,
        errors: total.errors,
    })
}

impl LoadReport {
    /// A human-readable summary.
    pub fn text(&self) -> String {
        let mut out = format!(
            "spans/s accepted   {:.0}\n\
             spans accepted     {} (rejected {}, in failed requests {})\n\
             requests           {} ok, {} failed ({:.1} spans/request, {:.0} B/span)\n\
             latency ms         p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             measured           {:.1} s",
            self.spans_per_sec,
            self.spans_accepted,
            self.spans_rejected,
            self.spans_failed,
            self.requests_ok,
            self.requests_failed,
            self.spans_per_request,
            self.bytes_per_span,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
            self.elapsed_secs,
        );
        if let Some(cpu) = self.generator_cpu_secs {
            out.push_str(&format!(
                "\ngenerator CPU      {cpu:.2} s over {:.1} s ({:.2} cores)",
                self.generator_wall_secs,
                cpu / self.generator_wall_secs.max(1e-9)
            ));
        }
        for error in &self.errors {
            out.push_str(&format!("\nerror              {error}"));
        }
        out
    }
}
