//! Requests that are small on the wire and large once decoded, to measure what a receiver's
//! memory does with them (`scripts/amplification.sh` runs each against a fresh receiver and
//! reads its peak RSS).
//!
//! - `protobuf`: one span with `count` empty attributes, 2 bytes each on the wire;
//! - `protobuf-gzip`: the same, gzip-compressed (10^7 attributes are 20 MB, about 20 KB gzip);
//! - `json-gzip`: OTLP/JSON whose one attribute nests arrays `depth` deep around `count` empty
//!   values, gzip-compressed; decoders that buffer each nested value re-buffer the levels
//!   below it;
//! - `grpc`: the `protobuf` request over OTLP/gRPC (gzip), `concurrency` at once.

use std::io::Write;
use std::time::Instant;

use anyhow::Context as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde::Serialize;
use tonic::codec::CompressionEncoding;

/// The amplifying inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Input {
    /// Empty attributes, protobuf over HTTP.
    Protobuf,
    /// Empty attributes, gzip protobuf over HTTP.
    ProtobufGzip,
    /// Nested empty array values, gzip JSON over HTTP.
    JsonGzip,
    /// Empty attributes over gRPC (gzip).
    Grpc,
}

/// What to send.
#[derive(Clone, Debug)]
pub struct AmplifyConfig {
    /// The input.
    pub input: Input,
    /// The receiver's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`.
    pub http_endpoint: String,
    /// The receiver's OTLP/gRPC URL, e.g. `http://127.0.0.1:4317`.
    pub grpc_endpoint: String,
    /// Empty attributes, or innermost empty values for `json-gzip`.
    pub count: usize,
    /// Nesting depth of `json-gzip`.
    pub depth: usize,
    /// Requests sent at once.
    pub concurrency: usize,
}

/// What the receiver answered.
#[derive(Clone, Debug, Serialize)]
pub struct AmplifyReport {
    /// The input.
    pub input: Input,
    /// Bytes sent per request, as on the wire (compressed where compressed).
    pub wire_bytes: usize,
    /// The answers: HTTP status or gRPC code, one per request.
    pub answers: Vec<String>,
    /// Seconds until the last answer.
    pub elapsed_secs: f64,
}

impl AmplifyReport {
    /// A one-line summary.
    pub fn text(&self) -> String {
        format!(
            "{:?}: {} bytes on the wire, answers {:?}, {:.2} s",
            self.input, self.wire_bytes, self.answers, self.elapsed_secs
        )
    }
}

fn empty_attributes(count: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0x4b; 16],
                    span_id: vec![0x01; 8],
                    name: "amplify".into(),
                    attributes: vec![KeyValue::default(); count],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn nested_json(depth: usize, leaves: usize) -> Vec<u8> {
    let mut out = String::with_capacity(leaves * 3 + depth * 40 + 256);
    out.push_str(
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"amplify","attributes":[{"key":"deep","value":"#,
    );
    for _ in 0..depth {
        out.push_str(r#"{"arrayValue":{"values":["#);
    }
    for leaf in 0..leaves {
        out.push_str(if leaf == 0 { "{}" } else { ",{}" });
    }
    for _ in 0..depth {
        out.push_str("]}}");
    }
    out.push_str("}]}]}]}]}");
    out.into_bytes()
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// Sends the input and reports the answers.
pub async fn run(config: &AmplifyConfig) -> anyhow::Result<AmplifyReport> {
    let concurrency = config.concurrency.max(1);
    let started = Instant::now();
    let (wire_bytes, answers) = match config.input {
        Input::Grpc => {
            let request = empty_attributes(config.count);
            let wire_bytes = gzip(&request.encode_to_vec())?.len();
            let endpoint = config.grpc_endpoint.clone();
            let sends = (0..concurrency).map(|_| {
                let request = request.clone();
                let endpoint = endpoint.clone();
                async move {
                    let mut client = TraceServiceClient::connect(endpoint)
                        .await
                        .context("cannot connect")?
                        .max_encoding_message_size(usize::MAX)
                        .send_compressed(CompressionEncoding::Gzip);
                    Ok::<_, anyhow::Error>(match client.export(request).await {
                        Ok(_) => "OK".to_owned(),
                        Err(status) => format!("{:?}", status.code()),
                    })
                }
            });
            let answers = futures_join(sends).await?;
            (wire_bytes, answers)
        }
        input => {
            let (content_type, body, gzipped) = match input {
                Input::Protobuf => (
                    "application/x-protobuf",
                    empty_attributes(config.count).encode_to_vec(),
                    false,
                ),
                Input::ProtobufGzip => (
                    "application/x-protobuf",
                    gzip(&empty_attributes(config.count).encode_to_vec())?,
                    true,
                ),
                _ => (
                    "application/json",
                    gzip(&nested_json(config.depth, config.count))?,
                    true,
                ),
            };
            let wire_bytes = body.len();
            let client = reqwest::Client::new();
            let url = format!("{}/v1/traces", config.http_endpoint.trim_end_matches('/'));
            let sends = (0..concurrency).map(|_| {
                let mut builder = client
                    .post(&url)
                    .header("content-type", content_type)
                    .body(body.clone());
                if gzipped {
                    builder = builder.header("content-encoding", "gzip");
                }
                async move {
                    Ok::<_, anyhow::Error>(match builder.send().await {
                        Ok(response) => response.status().as_u16().to_string(),
                        Err(error) => format!("error: {error}"),
                    })
                }
            });
            let answers = futures_join(sends).await?;
            (wire_bytes, answers)
        }
    };
    Ok(AmplifyReport {
        input: config.input,
        wire_bytes,
        answers,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// Runs the futures at once on the current task's runtime and collects their results in order.
async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.context("a sender panicked")??);
    }
    Ok(out)
}
