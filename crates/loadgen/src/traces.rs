//! Realistic LLM traces, built from a seed and encoded once.
//!
//! One trace is what a RAG service writes for one answer: an HTTP server root span, a
//! retrieval span returning 5–20 chunk ids, a rerank span keeping the best few, and the
//! generation span (`gen_ai.*` and `closedloop.*` attributes) that feedback judges. A share of
//! responses gets a feedback span, written as the conventions ask: in the judged trace, with
//! exactly one link to the judged span (`closedloop.link.type` = `judged_response`). Feedback
//! arrives later than its response, so a response's feedback span travels in the next request.
//!
//! Requests are encoded once ([`Body`]); each send copies the bytes and XORs a salt into every
//! trace id and span id in place ([`Body::salted`]), so a pool of bodies can be replayed for
//! minutes without the receiver seeing the same span twice, while parents and feedback links
//! still point at the spans they name.

use closedloop_semconv::attribute::{
    self as attr, FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource,
    GenAiOperationName, GenAiProviderName, LinkType, RetrievalStage,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Keys of the general OpenTelemetry registry (HTTP server spans, resources) that closedloop's
/// registry does not carry; the generator writes them so that spans look like a real service's.
mod otel {
    pub(super) const SERVICE_NAME: &str = "service.name";
    pub(super) const SERVICE_VERSION: &str = "service.version";
    pub(super) const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";
    pub(super) const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
    pub(super) const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";
    pub(super) const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";
    pub(super) const HOST_NAME: &str = "host.name";
    pub(super) const HTTP_REQUEST_METHOD: &str = "http.request.method";
    pub(super) const HTTP_ROUTE: &str = "http.route";
    pub(super) const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    pub(super) const URL_PATH: &str = "url.path";
    pub(super) const URL_SCHEME: &str = "url.scheme";
    pub(super) const SERVER_ADDRESS: &str = "server.address";
    pub(super) const SERVER_PORT: &str = "server.port";
    pub(super) const CLIENT_ADDRESS: &str = "client.address";
    pub(super) const USER_AGENT_ORIGINAL: &str = "user_agent.original";
    pub(super) const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
}

/// The spans of one trace, in the order the generator writes them.
pub const SPANS_PER_TRACE: usize = 4;

const MODELS: &[&str] = &["gpt-4o", "gpt-4o-mini", "gpt-4.1"];
const RERANK_MODEL: &str = "rerank-english-v3.0";
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "answer_with_context",
        "v3",
        "sha256:4f2a9c0d1e7b5a6c3d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
    ),
    (
        "answer_with_context",
        "v4",
        "sha256:9b1e7c2a4d6f8e0a1c3b5d7f9e2a4c6b8d0f1e3a5c7b9d2f4e6a8c0b1d3f5e7a",
    ),
    (
        "support/refund-v2",
        "v1",
        "sha256:0a2c4e6f8b1d3f5a7c9e0b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d0f2a",
    ),
];
const DATA_SOURCES: &[(&str, &str)] = &[
    ("product-docs", "bm25-chunk512-v4"),
    ("help-center", "2026-11-20"),
];
const TOPICS: &[&str] = &[
    "reset-password",
    "account-locked",
    "billing",
    "refund-policy",
    "two-factor",
    "api-keys",
    "rate-limits",
    "export-data",
    "delete-account",
    "invoices",
    "sso-setup",
    "webhooks",
    "team-invites",
    "pricing",
    "data-retention",
    "audit-log",
];
const CATEGORIES: &[FailureCategory] = &[
    FailureCategory::IrrelevantContext,
    FailureCategory::MissingContext,
    FailureCategory::Hallucination,
    FailureCategory::WrongAnswer,
];

/// What the generator produces.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceConfig {
    /// The seed: equal seeds give equal requests.
    pub seed: u64,
    /// Spans per request (whole traces, plus the feedback spans of the previous request).
    pub batch_spans: usize,
    /// The share of responses that get feedback.
    pub feedback_ratio: f64,
    /// The share of responses that get negative feedback (part of `feedback_ratio`).
    pub negative_ratio: f64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            batch_spans: 100,
            feedback_ratio: 0.20,
            negative_ratio: 0.05,
        }
    }
}

/// One encoded `ExportTraceServiceRequest`.
#[derive(Clone, Debug)]
pub struct Body {
    /// The protobuf encoding.
    pub bytes: Vec<u8>,
    /// Spans in the request.
    pub spans: usize,
    /// Generation (response) spans in the request.
    pub responses: usize,
    /// Feedback spans in the request.
    pub feedback: usize,
    /// Negative feedback spans in the request.
    pub negative: usize,
    /// Where each 16-byte trace id (of spans and of links) starts in `bytes`.
    trace_id_offsets: Vec<usize>,
    /// Where each 8-byte span id (of spans, of their parents and of links) starts in `bytes`.
    span_id_offsets: Vec<usize>,
}

impl Body {
    fn new(
        bytes: Vec<u8>,
        spans: usize,
        responses: usize,
        feedback: usize,
        negative: usize,
    ) -> Self {
        let offsets = IdOffsets::of_request(&bytes);
        Self {
            bytes,
            spans,
            responses,
            feedback,
            negative,
            trace_id_offsets: offsets.trace_ids,
            span_id_offsets: offsets.span_ids,
        }
    }

    /// The bytes with `salt` XORed into the last 8 bytes of every trace id and, mixed, into
    /// every span id: a span keeps one new id wherever it is named (as a span, a parent or a
    /// link target), and salts differ per replay. Salt 0 gives the bytes unchanged.
    pub fn salted(&self, salt: u64) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        if salt != 0 {
            let trace_salt = salt.to_le_bytes();
            for &offset in &self.trace_id_offsets {
                xor(&mut bytes[offset + 8..offset + 16], trace_salt);
            }
            let span_salt = span_salt(salt).to_le_bytes();
            for &offset in &self.span_id_offsets {
                xor(&mut bytes[offset..offset + 8], span_salt);
            }
        }
        bytes
    }

    /// The number of trace-id occurrences that [`Body::salted`] rewrites.
    pub fn trace_id_occurrences(&self) -> usize {
        self.trace_id_offsets.len()
    }

    /// The number of span-id occurrences that [`Body::salted`] rewrites.
    pub fn span_id_occurrences(&self) -> usize {
        self.span_id_offsets.len()
    }
}

fn xor(bytes: &mut [u8], salt: [u8; 8]) {
    for (byte, salt) in bytes.iter_mut().zip(salt) {
        *byte ^= salt;
    }
}

/// The span-id salt for a replay salt: a bijection (splitmix64's finaliser), so distinct
/// replays XOR distinct values, spread over all 64 bits even for consecutive salts.
fn span_salt(salt: u64) -> u64 {
    let mut z = salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where the ids of an encoded `ExportTraceServiceRequest` are, found by walking its
/// protobuf fields (request → resource spans → scope spans → span → link).
#[derive(Debug, Default)]
struct IdOffsets {
    trace_ids: Vec<usize>,
    span_ids: Vec<usize>,
}

/// Field numbers of the OTLP trace messages, from `opentelemetry/proto/trace/v1/trace.proto`.
mod field {
    pub(super) const REQUEST_RESOURCE_SPANS: u64 = 1;
    pub(super) const RESOURCE_SPANS_SCOPE_SPANS: u64 = 2;
    pub(super) const SCOPE_SPANS_SPANS: u64 = 2;
    pub(super) const SPAN_TRACE_ID: u64 = 1;
    pub(super) const SPAN_SPAN_ID: u64 = 2;
    pub(super) const SPAN_PARENT_SPAN_ID: u64 = 4;
    pub(super) const SPAN_LINKS: u64 = 13;
    pub(super) const LINK_TRACE_ID: u64 = 1;
    pub(super) const LINK_SPAN_ID: u64 = 2;
}

impl IdOffsets {
    fn of_request(bytes: &[u8]) -> Self {
        let mut offsets = Self::default();
        for resource in fields(bytes, 0..bytes.len(), field::REQUEST_RESOURCE_SPANS) {
            for scope in fields(bytes, resource, field::RESOURCE_SPANS_SCOPE_SPANS) {
                for span in fields(bytes, scope, field::SCOPE_SPANS_SPANS) {
                    offsets.span(bytes, span);
                }
            }
        }
        offsets
    }

    fn span(&mut self, bytes: &[u8], span: Field) {
        for (number, value) in each_field(bytes, span) {
            match (number, value.len()) {
                (field::SPAN_TRACE_ID, 16) => self.trace_ids.push(value.start),
                (field::SPAN_SPAN_ID | field::SPAN_PARENT_SPAN_ID, 8) => {
                    self.span_ids.push(value.start)
                }
                (field::SPAN_LINKS, _) => {
                    for (number, value) in each_field(bytes, value) {
                        match (number, value.len()) {
                            (field::LINK_TRACE_ID, 16) => self.trace_ids.push(value.start),
                            (field::LINK_SPAN_ID, 8) => self.span_ids.push(value.start),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A length-delimited field's value: a byte range of the encoded request.
type Field = std::ops::Range<usize>;

/// The values of the length-delimited fields numbered `number` of the message in `within`.
fn fields(bytes: &[u8], within: Field, number: u64) -> Vec<Field> {
    each_field(bytes, within)
        .filter(|(found, _)| *found == number)
        .map(|(_, value)| value)
        .collect()
}

/// The length-delimited fields of the message in `within`, as (field number, value range).
/// Other wire types are skipped. The generator encoded these bytes itself, so a malformed
/// message is a bug here: it panics.
fn each_field(bytes: &[u8], within: Field) -> impl Iterator<Item = (u64, Field)> + '_ {
    let end = within.end;
    let mut at = within.start;
    std::iter::from_fn(move || loop {
        if at >= end {
            return None;
        }
        let key = varint(bytes, &mut at);
        let (number, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                varint(bytes, &mut at);
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = varint(bytes, &mut at) as usize;
                let value = at..at + len;
                at += len;
                assert!(at <= end, "field {number} overruns its message");
                return Some((number, value));
            }
            other => panic!("unexpected wire type {other} in the generator's own encoding"),
        }
    })
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// The ids of one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ids {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The span id.
    pub span_id: [u8; 8],
}

/// Feedback owed to a response, written into a later request.
#[derive(Clone, Copy, Debug)]
struct Owed {
    judged: Ids,
    negative: bool,
    session: u32,
    user: u32,
}

/// Builds traces from a seeded random source.
#[derive(Debug)]
pub struct TraceBuilder {
    config: TraceConfig,
    rng: StdRng,
    /// Base timestamp of the generated spans.
    start_unix_nano: u64,
    turn: i64,
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

fn double(key: &str, value: f64) -> KeyValue {
    kv(key, Value::DoubleValue(value))
}

fn array(key: &str, values: impl IntoIterator<Item = Value>) -> KeyValue {
    kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: values
                .into_iter()
                .map(|value| AnyValue { value: Some(value) })
                .collect(),
        }),
    )
}

fn texts<'a>(key: &str, values: impl IntoIterator<Item = &'a String>) -> KeyValue {
    array(key, values.into_iter().cloned().map(Value::StringValue))
}

/// The resource of the generated application.
fn resource() -> Resource {
    Resource {
        attributes: vec![
            text(otel::SERVICE_NAME, "rag-app"),
            text(otel::SERVICE_VERSION, "1.14.2"),
            text(otel::DEPLOYMENT_ENVIRONMENT_NAME, "production"),
            text(otel::TELEMETRY_SDK_NAME, "opentelemetry"),
            text(otel::TELEMETRY_SDK_LANGUAGE, "rust"),
            text(otel::TELEMETRY_SDK_VERSION, "0.33.0"),
            text(otel::HOST_NAME, "rag-app-7d9f8c6b5-x2k4q"),
        ],
        ..Default::default()
    }
}

/// Wraps spans in a request from the generated application.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "closedloop-tracing".to_owned(),
                    version: "0.1.0".to_owned(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

impl TraceBuilder {
    /// A builder; equal configurations build equal traces.
    pub fn new(config: TraceConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self {
            config,
            rng,
            // A fixed recent time, so that equal seeds give equal bytes.
            start_unix_nano: 1_767_225_600_000_000_000,
            turn: 0,
        }
    }

    fn ids(&mut self) -> Ids {
        Ids {
            trace_id: self.rng.random(),
            span_id: self.rng.random(),
        }
    }

    fn chunk_id(&mut self) -> String {
        let topic = TOPICS[self.rng.random_range(0..TOPICS.len())];
        format!("kb-{topic}#{}", self.rng.random_range(0..12))
    }

    /// The four spans of one answer; returns them with the generation span's ids, session and
    /// user.
    pub fn trace(&mut self) -> (Vec<Span>, Ids, u32, u32) {
        let root = self.ids();
        let trace_id = root.trace_id;
        let child = |builder: &mut Self| Ids {
            trace_id,
            span_id: builder.rng.random(),
        };
        let (retrieval, rerank, generation) = (child(self), child(self), child(self));
        let session: u32 = self.rng.random_range(0..50_000);
        let user: u32 = session / 3;
        let session_id = format!("sess-{session:08x}");
        let user_id = format!("user-{user:06x}");
        self.turn = (self.turn + 1) % 7;
        let start = self.start_unix_nano + self.rng.random_range(0..3_600_000_000_000u64);
        let (data_source, index_version) = DATA_SOURCES[self.rng.random_range(0..2)];
        let retrieved: Vec<String> = (0..self.rng.random_range(5..=20))
            .map(|_| self.chunk_id())
            .collect();
        let mut scores: Vec<f64> = retrieved
            .iter()
            .map(|_| (self.rng.random_range(0.05..0.95f64) * 1000.0).round() / 1000.0)
            .collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        let kept = retrieved.len().min(self.rng.random_range(3..=6));
        let reranked: Vec<String> = retrieved[..kept].to_vec();
        let (template_id, template_version, template_hash) =
            TEMPLATES[self.rng.random_range(0..TEMPLATES.len())];
        let model = MODELS[self.rng.random_range(0..MODELS.len())];
        let input_tokens = self.rng.random_range(400..3_000);
        let output_tokens = self.rng.random_range(40..600);
        let response_id = format!("chatcmpl-{:016x}", self.rng.random::<u64>());
        let fingerprint = format!("mh64:{:016x}", self.rng.random::<u64>());
        let client = format!(
            "10.{}.{}.{}",
            self.rng.random::<u8>(),
            self.rng.random::<u8>(),
            self.rng.random::<u8>()
        );

        let ms = 1_000_000u64;
        let span = |ids: Ids, parent: Option<Ids>, name: String, kind: SpanKind, from, to| Span {
            trace_id: ids.trace_id.to_vec(),
            span_id: ids.span_id.to_vec(),
            parent_span_id: parent.map(|p| p.span_id.to_vec()).unwrap_or_default(),
            name,
            kind: kind as i32,
            start_time_unix_nano: start + from * ms,
            end_time_unix_nano: start + to * ms,
            ..Default::default()
        };
        let mut root_span = span(
            root,
            None,
            "POST /v1/answer".to_owned(),
            SpanKind::Server,
            0,
            1_450,
        );
        root_span.attributes = vec![
            text(otel::HTTP_REQUEST_METHOD, "POST"),
            text(otel::HTTP_ROUTE, "/v1/answer"),
            text(otel::URL_PATH, "/v1/answer"),
            text(otel::URL_SCHEME, "https"),
            int(otel::HTTP_RESPONSE_STATUS_CODE, 200),
            text(otel::SERVER_ADDRESS, "api.example.com"),
            int(otel::SERVER_PORT, 443),
            text(otel::CLIENT_ADDRESS, client),
            text(
                otel::USER_AGENT_ORIGINAL,
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
            ),
            text(otel::NETWORK_PROTOCOL_VERSION, "1.1"),
            text(attr::SESSION_ID, session_id.clone()),
            text(attr::USER_ID, user_id.clone()),
        ];
        let mut retrieval_span = span(
            retrieval,
            Some(root),
            format!("retrieval {data_source}"),
            SpanKind::Client,
            5,
            95,
        );
        retrieval_span.attributes = vec![
            text(
                attr::GEN_AI_OPERATION_NAME,
                GenAiOperationName::Retrieval.as_str(),
            ),
            text(
                attr::CLOSEDLOOP_RETRIEVAL_STAGE,
                RetrievalStage::Retrieve.as_str(),
            ),
            text(attr::GEN_AI_DATA_SOURCE_ID, data_source),
            texts(attr::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS, &retrieved),
            array(
                attr::CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES,
                scores.iter().map(|&score| Value::DoubleValue(score)),
            ),
            int(attr::CLOSEDLOOP_RETRIEVAL_TOP_K, retrieved.len() as i64),
            text(attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION, index_version),
        ];
        let mut rerank_span = span(
            rerank,
            Some(root),
            format!("rerank {data_source}"),
            SpanKind::Internal,
            96,
            180,
        );
        rerank_span.attributes = vec![
            text(
                attr::CLOSEDLOOP_RETRIEVAL_STAGE,
                RetrievalStage::Rerank.as_str(),
            ),
            text(attr::GEN_AI_REQUEST_MODEL, RERANK_MODEL),
            text(attr::GEN_AI_DATA_SOURCE_ID, data_source),
            texts(attr::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS, &reranked),
            array(
                attr::CLOSEDLOOP_RETRIEVAL_CHUNK_SCORES,
                scores[..kept]
                    .iter()
                    .map(|&score| Value::DoubleValue(score)),
            ),
            int(attr::CLOSEDLOOP_RETRIEVAL_TOP_K, kept as i64),
        ];
        let mut generation_span = span(
            generation,
            Some(root),
            format!("{} {model}", GenAiOperationName::Chat.as_str()),
            SpanKind::Client,
            181,
            1_440,
        );
        generation_span.attributes = vec![
            text(
                attr::GEN_AI_OPERATION_NAME,
                GenAiOperationName::Chat.as_str(),
            ),
            text(
                attr::GEN_AI_PROVIDER_NAME,
                GenAiProviderName::Openai.as_str(),
            ),
            text(attr::GEN_AI_REQUEST_MODEL, model),
            double(attr::GEN_AI_REQUEST_TEMPERATURE, 0.2),
            int(attr::GEN_AI_REQUEST_MAX_TOKENS, 1024),
            text(attr::GEN_AI_RESPONSE_ID, response_id),
            text(attr::GEN_AI_RESPONSE_MODEL, format!("{model}-2024-08-06")),
            array(
                attr::GEN_AI_RESPONSE_FINISH_REASONS,
                [Value::StringValue("stop".to_owned())],
            ),
            int(attr::GEN_AI_USAGE_INPUT_TOKENS, input_tokens),
            int(attr::GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens),
            text(attr::GEN_AI_PROMPT_NAME, template_id),
            text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID, template_id),
            text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION, template_version),
            text(attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH, template_hash),
            texts(attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS, &reranked),
            text(attr::GEN_AI_DATA_SOURCE_ID, data_source),
            text(attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION, index_version),
            text(attr::CLOSEDLOOP_QUERY_FINGERPRINT, fingerprint),
            int(attr::CLOSEDLOOP_TURN_INDEX, self.turn),
            text(attr::SESSION_ID, session_id),
            text(attr::USER_ID, user_id),
        ];
        (
            vec![root_span, retrieval_span, rerank_span, generation_span],
            generation,
            session,
            user,
        )
    }

    /// A feedback span about `judged`, in its trace, linked to it.
    pub fn feedback_span(&mut self, judged: Ids, negative: bool, session: u32, user: u32) -> Span {
        let ids = Ids {
            trace_id: judged.trace_id,
            span_id: self.rng.random(),
        };
        let signal = if negative {
            FeedbackSignal::ThumbsDown
        } else {
            FeedbackSignal::ThumbsUp
        };
        let value = if negative { 0.0 } else { 1.0 };
        let time = self.start_unix_nano + self.rng.random_range(0..3_600_000_000_000u64);
        let mut attributes = vec![
            text(attr::CLOSEDLOOP_FEEDBACK_SIGNAL, signal.as_str()),
            text(
                attr::CLOSEDLOOP_FEEDBACK_KIND,
                FeedbackKind::Explicit.as_str(),
            ),
            text(
                attr::CLOSEDLOOP_FEEDBACK_SOURCE,
                FeedbackSource::User.as_str(),
            ),
            double(attr::CLOSEDLOOP_FEEDBACK_VALUE, value),
            text(
                attr::GEN_AI_EVALUATION_NAME,
                format!("closedloop.feedback.{}", signal.as_str()),
            ),
            double(attr::GEN_AI_EVALUATION_SCORE_VALUE, value),
            text(attr::SESSION_ID, format!("sess-{session:08x}")),
            text(attr::USER_ID, format!("user-{user:06x}")),
        ];
        if negative && self.rng.random_bool(0.5) {
            let category = CATEGORIES[self.rng.random_range(0..CATEGORIES.len())];
            attributes.push(text(attr::CLOSEDLOOP_FAILURE_CATEGORY, category.as_str()));
        }
        Span {
            trace_id: ids.trace_id.to_vec(),
            span_id: ids.span_id.to_vec(),
            name: format!("feedback {}", signal.as_str()),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: time,
            end_time_unix_nano: time,
            attributes,
            links: vec![Link {
                trace_id: judged.trace_id.to_vec(),
                span_id: judged.span_id.to_vec(),
                attributes: vec![text(
                    attr::CLOSEDLOOP_LINK_TYPE,
                    LinkType::JudgedResponse.as_str(),
                )],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Whether the next response gets feedback, and whether it is negative.
    fn draw_feedback(&mut self) -> Option<bool> {
        let draw: f64 = self.rng.random();
        if draw < self.config.negative_ratio {
            Some(true)
        } else if draw < self.config.feedback_ratio {
            Some(false)
        } else {
            None
        }
    }

    /// `count` encoded requests. Each holds the feedback owed from the previous request, then
    /// whole traces up to `batch_spans` spans; the last request also carries its own feedback.
    pub fn bodies(&mut self, count: usize) -> Vec<Body> {
        let mut bodies = Vec::with_capacity(count);
        let mut owed: Vec<Owed> = Vec::new();
        for index in 0..count {
            let mut spans = Vec::with_capacity(self.config.batch_spans + 8);
            let (mut responses, mut feedback, mut negative) = (0, 0, 0);
            for debt in std::mem::take(&mut owed) {
                spans.push(self.feedback_span(debt.judged, debt.negative, debt.session, debt.user));
                feedback += 1;
                negative += usize::from(debt.negative);
            }
            while spans.is_empty() || spans.len() + SPANS_PER_TRACE <= self.config.batch_spans {
                let (trace, judged, session, user) = self.trace();
                spans.extend(trace);
                responses += 1;
                if let Some(is_negative) = self.draw_feedback() {
                    owed.push(Owed {
                        judged,
                        negative: is_negative,
                        session,
                        user,
                    });
                }
            }
            if index + 1 == count {
                for debt in std::mem::take(&mut owed) {
                    spans.push(self.feedback_span(
                        debt.judged,
                        debt.negative,
                        debt.session,
                        debt.user,
                    ));
                    feedback += 1;
                    negative += usize::from(debt.negative);
                }
            }
            let span_count = spans.len();
            let bytes = request(spans).encode_to_vec();
            bodies.push(Body::new(bytes, span_count, responses, feedback, negative));
        }
        bodies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salting_changes_every_id_consistently() {
        let mut builder = TraceBuilder::new(TraceConfig {
            batch_spans: 40,
            ..TraceConfig::default()
        });
        let bodies = builder.bodies(3);
        let body = &bodies[1];
        let plain = ExportTraceServiceRequest::decode(&body.salted(0)[..]).unwrap();
        let salted = ExportTraceServiceRequest::decode(&body.salted(7)[..]).unwrap();
        let spans = |request: &ExportTraceServiceRequest| {
            request.resource_spans[0].scope_spans[0].spans.clone()
        };
        for (before, after) in spans(&plain).iter().zip(spans(&salted)) {
            assert_ne!(before.trace_id, after.trace_id);
            assert_eq!(before.trace_id[..8], after.trace_id[..8]);
            assert_ne!(before.span_id, after.span_id);
            for (link_before, link_after) in before.links.iter().zip(&after.links) {
                assert_ne!(link_before.trace_id, link_after.trace_id);
                assert_ne!(link_before.span_id, link_after.span_id);
                assert_eq!(link_after.trace_id, after.trace_id);
            }
        }
        assert_eq!(
            body.trace_id_occurrences(),
            body.spans + body.feedback,
            "one trace id per span and one per feedback link"
        );
    }
}
