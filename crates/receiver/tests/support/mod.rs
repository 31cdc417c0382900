//! Shared fixtures of the receiver's integration tests: a real OTLP sink (gRPC and HTTP) on
//! `127.0.0.1:0` that captures exported spans, builders of realistic OTLP requests, and a
//! pipeline configuration over a temporary store. The `closedloop` binary's tests
//! (`crates/cli/tests`) share it, adding what runs the binary.

// Each test crate compiles this module and uses a different part of it.
#![allow(dead_code, unreachable_pub)]

/// Real headless Chromium driven over WebDriver.
pub mod browser;
/// Arize Phoenix on loopback, from scripts/phoenix-env.sh.
pub mod phoenix;
/// The Python peers: the OpenTelemetry Python SDK and rotel.
pub mod python;
/// A real receiver on `127.0.0.1:0` (the network edge's fixture).
pub mod receiver;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use closedloop_receiver::{ExportConfig, ExportProtocol, JoinConfig, PipelineConfig, StoreConfig};
use closedloop_semconv::attribute as attr;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tonic::codec::CompressionEncoding;

/// The OpenTelemetry resource attribute naming a service (not part of closedloop's registry).
pub const SERVICE_NAME: &str = "service.name";

/// A command's connection to the store file at `path`, as `closedloop review|triage|report|
/// evalset` open it.
pub fn command_store(path: &Path) -> closedloop_store::Connection {
    let config = StoreConfig {
        path: path.to_owned(),
        ..StoreConfig::default()
    };
    closedloop_store::Connection::open(&config, closedloop_store::Access::Command).unwrap()
}

/// `data` gzip-compressed (best compression, so compression bombs stay small on the wire).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A trace id and span id.
pub type Ids = ([u8; 16], [u8; 8]);

/// Fresh random ids.
pub fn ids() -> Ids {
    (rand::random(), rand::random())
}

/// Random span id in the same trace.
pub fn child(ids: Ids) -> Ids {
    (ids.0, rand::random())
}

// ---------------------------------------------------------------------------------------
// Attribute helpers.

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

pub fn texts(key: &str, values: &[&str]) -> KeyValue {
    kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: values
                .iter()
                .map(|value| AnyValue {
                    value: Some(Value::StringValue((*value).to_owned())),
                })
                .collect(),
        }),
    )
}

pub fn double(key: &str, value: f64) -> KeyValue {
    kv(key, Value::DoubleValue(value))
}

// ---------------------------------------------------------------------------------------
// Request builders.

/// A request from an application with `service.name` = `rag-app`.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text(SERVICE_NAME, "rag-app")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// What a generation span says about itself.
#[derive(Clone, Debug)]
pub struct Generation {
    pub response_id: Option<&'static str>,
    pub chunk_ids: Option<Vec<&'static str>>,
    pub template_id: &'static str,
    pub template_version: &'static str,
    pub model: &'static str,
    pub data_source: &'static str,
    pub index_version: &'static str,
    pub session_id: &'static str,
    pub user_id: &'static str,
}

impl Default for Generation {
    fn default() -> Self {
        Self {
            response_id: None,
            chunk_ids: Some(vec!["kb-reset-password#2", "kb-account-locked#0"]),
            template_id: "answer_with_context",
            template_version: "v3",
            model: "gpt-4o",
            data_source: "product-docs",
            index_version: "2026-11-20",
            session_id: "session-1",
            user_id: "user-1",
        }
    }
}

/// A generation span as closedloop-tracing writes it (closedloop and GenAI attributes).
pub fn generation_span(ids: Ids, generation: &Generation) -> Span {
    let start = now_ns();
    let mut attributes = vec![
        text(attr::GEN_AI_OPERATION_NAME, "chat"),
        text(attr::GEN_AI_PROVIDER_NAME, "openai"),
        text(attr::GEN_AI_REQUEST_MODEL, generation.model),
        double(attr::GEN_AI_REQUEST_TEMPERATURE, 0.2),
        kv(attr::GEN_AI_REQUEST_MAX_TOKENS, Value::IntValue(512)),
        text(attr::GEN_AI_PROMPT_NAME, generation.template_id),
        text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID, generation.template_id),
        text(
            attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
            generation.template_version,
        ),
        text(
            attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH,
            "sha256:4f2a9c0d1e7b5a6c3d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
        ),
        text(attr::GEN_AI_DATA_SOURCE_ID, generation.data_source),
        text(
            attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION,
            generation.index_version,
        ),
        text(attr::CLOSEDLOOP_QUERY_FINGERPRINT, "mh64:0f3a9c0d1e7b5a6c"),
        text(attr::SESSION_ID, generation.session_id),
        text(attr::USER_ID, generation.user_id),
        kv(attr::GEN_AI_USAGE_INPUT_TOKENS, Value::IntValue(812)),
        kv(attr::GEN_AI_USAGE_OUTPUT_TOKENS, Value::IntValue(96)),
    ];
    if let Some(chunks) = &generation.chunk_ids {
        attributes.push(texts(attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS, chunks));
    }
    if let Some(response_id) = generation.response_id {
        attributes.push(text(attr::GEN_AI_RESPONSE_ID, response_id));
    }
    Span {
        trace_id: ids.0.to_vec(),
        span_id: ids.1.to_vec(),
        name: format!("chat {}", generation.model),
        kind: 3, // CLIENT
        start_time_unix_nano: start,
        end_time_unix_nano: start + 800_000_000,
        attributes,
        ..Default::default()
    }
}

/// A feedback span as closedloop-tracing writes it: in the judged trace, with one link to
/// the judged span (when `target` is given).
pub fn feedback_span(ids: Ids, target: Option<Ids>, signal: &str, extra: Vec<KeyValue>) -> Span {
    let now = now_ns();
    let mut attributes = vec![
        text(attr::CLOSEDLOOP_FEEDBACK_SIGNAL, signal),
        text(attr::CLOSEDLOOP_FEEDBACK_SOURCE, "user"),
        text(
            attr::GEN_AI_EVALUATION_NAME,
            &format!("closedloop.feedback.{signal}"),
        ),
    ];
    attributes.extend(extra);
    Span {
        trace_id: ids.0.to_vec(),
        span_id: ids.1.to_vec(),
        name: format!("feedback {signal}"),
        kind: 1, // INTERNAL
        start_time_unix_nano: now,
        end_time_unix_nano: now,
        attributes,
        links: target
            .map(|target| Link {
                trace_id: target.0.to_vec(),
                span_id: target.1.to_vec(),
                attributes: vec![text(attr::CLOSEDLOOP_LINK_TYPE, "judged_response")],
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// The OpenInference fixture (an LLM span and its RETRIEVER span, as the OpenInference
/// Python instrumentations write them, in OTLP/JSON), with its ids replaced by `trace_id`
/// and fresh span ids. Returns the request and the LLM span's ids.
pub fn openinference_request(trace_id: [u8; 16]) -> (ExportTraceServiceRequest, Ids) {
    let fixture = include_str!("../fixtures/openinference.json");
    let mut request: ExportTraceServiceRequest =
        serde_json::from_str(fixture).expect("fixture parses as OTLP/JSON");
    let mut llm = None;
    let mut remap = std::collections::HashMap::new();
    for span in request
        .resource_spans
        .iter_mut()
        .flat_map(|rs| rs.scope_spans.iter_mut())
        .flat_map(|ss| ss.spans.iter_mut())
    {
        let new_id: [u8; 8] = rand::random();
        remap.insert(span.span_id.clone(), new_id.to_vec());
        span.trace_id = trace_id.to_vec();
        span.span_id = new_id.to_vec();
        if span.name == "ChatCompletion" {
            llm = Some((trace_id, new_id));
        }
    }
    for span in request
        .resource_spans
        .iter_mut()
        .flat_map(|rs| rs.scope_spans.iter_mut())
        .flat_map(|ss| ss.spans.iter_mut())
    {
        if let Some(parent) = remap.get(&span.parent_span_id) {
            span.parent_span_id = parent.clone();
        }
    }
    (request, llm.expect("fixture has a ChatCompletion span"))
}

// ---------------------------------------------------------------------------------------
// Pipeline configuration.

/// A pipeline over `dir/closedloop.db`, exporting to `endpoint` (if any), with the
/// environment ignored and a short join window.
pub fn config(dir: &Path, endpoint: Option<(String, ExportProtocol)>) -> PipelineConfig {
    PipelineConfig {
        store: StoreConfig {
            path: dir.join("closedloop.db"),
            ..Default::default()
        },
        join: JoinConfig {
            wait_secs: 2,
            ..Default::default()
        },
        export: ExportConfig {
            protocol: endpoint.as_ref().map(|(_, protocol)| *protocol),
            endpoint: endpoint.map(|(endpoint, _)| endpoint),
            initial_backoff_millis: 50,
            max_backoff_secs: 1,
            timeout_millis: Some(2_000),
            use_env: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// The OTLP sink.

/// A span the sink received, with its resource's `service.name` and its scope name.
#[derive(Clone, Debug)]
pub struct Exported {
    pub service_name: Option<String>,
    pub scope: String,
    pub span: Span,
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value| value.value.as_ref())
}

impl Exported {
    pub fn str(&self, key: &str) -> Option<&str> {
        match find(&self.span.attributes, key)? {
            Value::StringValue(text) => Some(text),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match find(&self.span.attributes, key)? {
            Value::IntValue(number) => Some(*number),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match find(&self.span.attributes, key)? {
            Value::BoolValue(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn strs(&self, key: &str) -> Option<Vec<String>> {
        match find(&self.span.attributes, key)? {
            Value::ArrayValue(array) => Some(
                array
                    .values
                    .iter()
                    .filter_map(|value| match value.value.as_ref()? {
                        Value::StringValue(text) => Some(text.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The (trace id, span id, `closedloop.link.type`) of each link.
    pub fn links(&self) -> Vec<(Vec<u8>, Vec<u8>, Option<String>)> {
        self.span
            .links
            .iter()
            .map(|link| {
                let link_type = match find(&link.attributes, attr::CLOSEDLOOP_LINK_TYPE) {
                    Some(Value::StringValue(text)) => Some(text.clone()),
                    _ => None,
                };
                (link.trace_id.clone(), link.span_id.clone(), link_type)
            })
            .collect()
    }
}

#[derive(Default)]
struct Captured {
    spans: Mutex<Vec<Exported>>,
    arrived: Notify,
    requests: AtomicUsize,
    /// Requests still to answer with 503 + `Retry-After: 1` (HTTP) or UNAVAILABLE (gRPC).
    fail_next: AtomicUsize,
    /// How long the sink takes per span before answering, in microseconds (it keeps the
    /// spans first, as a slow backend that finishes its work after the client gave up).
    delay_per_span_us: AtomicU64,
    /// Requests with a span of this trace are rejected as malformed (HTTP 400 / gRPC
    /// INVALID_ARGUMENT) and kept nothing of.
    reject_trace: Mutex<Option<Vec<u8>>>,
    /// Requests with more spans than this are rejected as malformed (0: no limit), as a
    /// backend with a request size limit answers 400/413.
    max_spans: AtomicUsize,
    /// The number of spans of each decoded request, in arrival order.
    sizes: Mutex<Vec<usize>>,
}

impl Captured {
    fn take(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service_name = resource_spans.resource.as_ref().and_then(|resource| {
                match find(&resource.attributes, SERVICE_NAME)? {
                    Value::StringValue(text) => Some(text.clone()),
                    _ => None,
                }
            });
            for scope_spans in resource_spans.scope_spans {
                let scope = scope_spans
                    .scope
                    .map(|scope| scope.name)
                    .unwrap_or_default();
                for span in scope_spans.spans {
                    spans.push(Exported {
                        service_name: service_name.clone(),
                        scope: scope.clone(),
                        span,
                    });
                }
            }
        }
        drop(spans);
        self.arrived.notify_waiters();
    }

    /// Keeps `request` unless it carries the rejected trace (then `false`), and waits as
    /// long as the configured delay makes it.
    async fn accept(&self, request: ExportTraceServiceRequest) -> bool {
        let spans: Vec<&Span> = request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .collect();
        let count = spans.len();
        self.sizes.lock().unwrap().push(count);
        let max_spans = self.max_spans.load(Ordering::SeqCst);
        if max_spans > 0 && count > max_spans {
            return false;
        }
        let reject = self.reject_trace.lock().unwrap().clone();
        if let Some(trace_id) = reject {
            if spans.iter().any(|span| span.trace_id == trace_id) {
                return false;
            }
        }
        self.take(request);
        let delay = self.delay_per_span_us.load(Ordering::SeqCst) * count as u64;
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        true
    }

    fn should_fail(&self) -> bool {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

struct GrpcSink(Arc<Captured>);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if self.0.should_fail() {
            return Err(tonic::Status::unavailable("sink told to fail"));
        }
        if !self.0.accept(request.into_inner()).await {
            return Err(tonic::Status::invalid_argument("sink told to reject"));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn http_export(
    axum::extract::State(captured): axum::extract::State<Arc<Captured>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if captured.should_fail() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "sink told to fail",
        )
            .into_response();
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|value| value == "gzip");
    let bytes = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return StatusCode::BAD_REQUEST.into_response();
        }
        out
    } else {
        body.to_vec()
    };
    match ExportTraceServiceRequest::decode(bytes.as_slice()) {
        Ok(request) => {
            if !captured.accept(request).await {
                return StatusCode::BAD_REQUEST.into_response();
            }
            (
                [("content-type", "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// A real OTLP trace sink that keeps what it receives.
pub struct Sink {
    pub addr: SocketAddr,
    pub protocol: ExportProtocol,
    captured: Arc<Captured>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// An address nothing listens on yet, for a sink started later.
pub async fn reserve_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

impl Sink {
    /// A gRPC sink on a fresh port.
    pub async fn grpc() -> Sink {
        Self::grpc_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// An HTTP/protobuf sink on a fresh port.
    pub async fn http() -> Sink {
        Self::http_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// A sink of `protocol` on `addr` (see [`reserve_addr`]).
    pub async fn start_on(addr: SocketAddr, protocol: ExportProtocol) -> Sink {
        let listener = TcpListener::bind(addr)
            .await
            .expect("rebind reserved address");
        match protocol {
            ExportProtocol::Grpc => Self::grpc_on(listener),
            _ => Self::http_on(listener),
        }
    }

    pub fn grpc_on(listener: TcpListener) -> Sink {
        let addr = listener.local_addr().unwrap();
        let captured = Arc::new(Captured::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let service = TraceServiceServer::new(GrpcSink(Arc::clone(&captured)))
            .accept_compressed(CompressionEncoding::Gzip);
        let task = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Sink {
            addr,
            protocol: ExportProtocol::Grpc,
            captured,
            stop: Some(stop),
            task,
        }
    }

    pub fn http_on(listener: TcpListener) -> Sink {
        let addr = listener.local_addr().unwrap();
        let captured = Arc::new(Captured::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_export))
            .with_state(Arc::clone(&captured));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Sink {
            addr,
            protocol: ExportProtocol::HttpProtobuf,
            captured,
            stop: Some(stop),
            task,
        }
    }

    /// The endpoint to configure the exporter with.
    pub fn endpoint(&self) -> (String, ExportProtocol) {
        (format!("http://{}", self.addr), self.protocol)
    }

    /// Answers the next `count` requests with a retryable failure.
    pub fn fail_next(&self, count: usize) {
        self.captured.fail_next.store(count, Ordering::SeqCst);
    }

    /// Takes `delay` per span of a request before answering it (after keeping its spans).
    pub fn delay_per_span(&self, delay: Duration) {
        self.captured
            .delay_per_span_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Rejects as malformed every request with a span of `trace_id`.
    pub fn reject_trace(&self, trace_id: [u8; 16]) {
        *self.captured.reject_trace.lock().unwrap() = Some(trace_id.to_vec());
    }

    /// Rejects as malformed every request with more than `max` spans.
    pub fn max_spans(&self, max: usize) {
        self.captured.max_spans.store(max, Ordering::SeqCst);
    }

    /// The number of spans of each request that reached the sink's decoder, in order.
    pub fn request_sizes(&self) -> Vec<usize> {
        self.captured.sizes.lock().unwrap().clone()
    }

    /// The export requests received (including failed ones).
    pub fn requests(&self) -> usize {
        self.captured.requests.load(Ordering::SeqCst)
    }

    /// Everything received so far.
    pub fn spans(&self) -> Vec<Exported> {
        self.captured.spans.lock().unwrap().clone()
    }

    /// Waits until at least `count` spans arrived (panics after `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Exported> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.captured.arrived.notified();
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let spans = self.spans();
                assert!(
                    spans.len() >= count,
                    "sink got {} spans, expected {count}: {spans:#?}",
                    spans.len()
                );
                return spans;
            }
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Polls `check` until it holds (panics after `timeout`); for state without a notification.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that `record` is the failure record of `response`, enriched from its span.
pub fn assert_enriched_record(record: &Exported, response: Ids, generation: &Generation) {
    assert_eq!(record.service_name.as_deref(), Some("closedloop"));
    assert_eq!(
        record.span.trace_id,
        response.0.to_vec(),
        "in the judged trace"
    );
    let links = record.links();
    assert_eq!(
        links.first(),
        Some(&(
            response.0.to_vec(),
            response.1.to_vec(),
            Some("judged_response".to_owned())
        )),
        "{links:?}"
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_SPAN_ID),
        Some(hex::encode(response.1).as_str())
    );
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID),
        Some(generation.template_id)
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION),
        Some(generation.template_version)
    );
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS),
        generation
            .chunk_ids
            .as_ref()
            .map(|chunks| chunks.iter().map(|chunk| chunk.to_string()).collect())
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL),
        Some(generation.model)
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_DATA_SOURCE),
        Some(generation.data_source)
    );
    assert_eq!(
        record.str(attr::GEN_AI_REQUEST_MODEL),
        None,
        "not a model call"
    );
    assert_eq!(record.str(attr::OPENINFERENCE_SPAN_KIND), Some("EVALUATOR"));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION),
        Some(generation.index_version)
    );
}

/// Writes one failure record through `pipeline` (a response and a `report` feedback span on
/// it, in one request); returns the response's ids, the record's key.
pub async fn fail_one(pipeline: &closedloop_receiver::Pipeline) -> Ids {
    let response = ids();
    pipeline
        .ingest(request(vec![
            generation_span(response, &Generation::default()),
            feedback_span(child(response), Some(response), "report", vec![]),
        ]))
        .await
        .unwrap();
    response
}
