//! Reading OTLP spans into the receiver's records.
//!
//! Spans written with closedloop's conventions, the OpenTelemetry GenAI conventions,
//! OpenInference and OpenLLMetry are all understood: foreign keys are mapped to closedloop's
//! through [`closedloop_semconv::compat`], so an OpenInference-instrumented Python app gets its
//! feedback joined like a Rust app using closedloop-tracing.
//!
//! - **LLM response spans**: `gen_ai.operation.name` is `chat`, `generate_content` or
//!   `text_completion`; or OpenInference `openinference.span.kind` = `LLM`; or OpenLLMetry
//!   `llm.request.type` = `chat` / `completion`. What the span does not say is derived (see
//!   [`derive`]):
//!   - the **query**: `closedloop.query.text`, else the last `user` input message of any
//!     convention; its fingerprint is `closedloop_tracing::fingerprint` of it unless
//!     `closedloop.query.fingerprint` is given. A fingerprint derived from the messages gives
//!     way to the query of the trace's retrieval step (see [`crate::join`]). The text is content:
//!     stored only with `store.store_content`; the fingerprint always.
//!   - the **template**: the id is `closedloop.prompt.template.id`, `traceloop.prompt.key`,
//!     `gen_ai.prompt.name` or OpenInference `prompt.id`; the text
//!     `closedloop.prompt.template.text`, `llm.prompt_template.template` or
//!     `traceloop.prompt.template`, else the input's system messages (joined by a blank line;
//!     or GenAI `gen_ai.system_instructions`), of which only the hash is kept (rendered, they
//!     may hold documents and user data). The hash is `sha256:` + the hex SHA-256 of the text; without a pinned version the version is the hash's first 12 hex digits,
//!     as closedloop-tracing does; without an id the id is `auto-` + its first 8 hex digits.
//!   - the **request model**: `gen_ai.request.model`, else the `model` of OpenInference
//!     `llm.invocation_parameters`, else the response model (`gen_ai.response.model`,
//!     OpenInference `llm.model_name`); the **provider**: `gen_ai.provider.name`,
//!     `gen_ai.system`, `llm.provider`, `llm.system`; the **response id**:
//!     `gen_ai.response.id`, else the `id` of the OpenInference `output.value` JSON body.
//! - **Feedback spans**: `closedloop.feedback.signal` is present; the judged span is the span
//!   link with `closedloop.link.type` = `judged_response`, or the only link. OpenInference
//!   annotation carrier spans (`annotations.<i>.annotation.*` with one link) are read as one
//!   feedback item per annotation.
//! - **Retrieval, rerank and filter spans**: `gen_ai.operation.name` = `retrieval` or
//!   `vector_db_retrieve` (OpenLLMetry's LangChain retriever), `closedloop.retrieval.stage`,
//!   OpenInference `RETRIEVER` / `RERANKER`, or an OpenLLMetry vector-database span (`db.system`
//!   one of [`VECTOR_DBS`]). Their chunk ids (`closedloop.retrieval.chunk_ids`,
//!   `reranker.output_documents.<i>.document.id`, `retrieval.documents.<i>.document.*`,
//!   OpenLLMetry `db.query.result` events, `traceloop.entity.output` documents; a document
//!   without an id is named by a metadata key or its content hash, see [`derive`]) and their
//!   query are carried to the LLM span of the same trace (see [`crate::join`]).
//!
//! Rejected (OTLP partial success): spans with a trace id that is not 16 bytes or a span id
//! that is not 8 bytes (or either all zeros), and feedback spans with an unknown enum value or
//! no way to find their response. Nothing here panics on client input.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use closedloop_semconv::attribute as attr;
use closedloop_semconv::compat;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use sha2::{Digest, Sha256};

use serde::Deserialize;

use crate::records::{Content, Feedback, Response, Retrieval, SpanRef, Template};
use crate::rules;
use crate::store::IngestBatch;
pub(crate) use crate::timefmt::now_unix_nano;
use crate::vocab::{
    FailureCategory, FeedbackKind, FeedbackSignal, FeedbackSource, GenAiOperationName, LinkType,
    RetrievalStage,
};

/// Keys of other conventions that mark a span's kind. They have no closedloop equivalent
/// (they classify spans rather than carry data), so the registry's compat map has no entry
/// for them; they are named once here.
mod foreign {
    /// OpenInference: the kind of span (`LLM`, `RETRIEVER`, `RERANKER`, …).
    pub(super) const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";
    /// OpenLLMetry: the kind of LLM request (`chat`, `completion`, `rerank`, …).
    pub(super) const LLM_REQUEST_TYPE: &str = "llm.request.type";
    /// OpenInference reranker output documents: `reranker.output_documents.<i>.document.id`.
    pub(super) const RERANKER_OUTPUT_PREFIX: &str = "reranker.output_documents.";
    pub(super) const DOCUMENT_ID_SUFFIX: &str = ".document.id";
    /// OpenLLMetry: the span event holding one vector-store result.
    pub(super) const DB_QUERY_RESULT_EVENT: &str = "db.query.result";

    pub(super) const OI_LLM: &str = "LLM";
    pub(super) const OI_RETRIEVER: &str = "RETRIEVER";
    pub(super) const OI_RERANKER: &str = "RERANKER";
    pub(super) const OLL_CHAT: &str = "chat";
    pub(super) const OLL_COMPLETION: &str = "completion";
    /// OpenLLMetry's LangChain retriever spans: `gen_ai.operation.name` = `vector_db_retrieve`.
    pub(super) const OLL_VECTOR_DB_RETRIEVE: &str = "vector_db_retrieve";
    /// The database system of a span (OpenLLMetry's vector-database spans set it).
    pub(super) const DB_SYSTEM: &str = "db.system";
}

mod derive;

/// The `db.system` values of the vector databases OpenLLMetry instruments: their query spans
/// are retrieval steps.
pub(crate) const VECTOR_DBS: &[&str] = &[
    "chroma", "lancedb", "marqo", "milvus", "pinecone", "qdrant", "weaviate",
];

/// The metadata keys that name a retrieved document when it has no id, by default.
const DEFAULT_CHUNK_ID_METADATA_KEYS: &[&str] = &["id", "doc_id", "chunk_id", "source"];

/// How spans of other instrumentations are read (`[spans]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpansConfig {
    /// The keys of a retrieved document's metadata (OpenInference
    /// `retrieval.documents.<i>.document.metadata`, OpenLLMetry `db.query.result.metadata`,
    /// LangChain document metadata) that name it when it has no id, first present wins; a
    /// document with none of them is named `sha256:` + the first 16 hex digits of the SHA-256
    /// of its content. Default `["id", "doc_id", "chunk_id", "source"]`.
    #[serde(default = "default_chunk_id_metadata_keys")]
    pub chunk_id_metadata_keys: Vec<String>,
}

fn default_chunk_id_metadata_keys() -> Vec<String> {
    DEFAULT_CHUNK_ID_METADATA_KEYS
        .iter()
        .map(|&key| key.to_owned())
        .collect()
}

impl Default for SpansConfig {
    fn default() -> Self {
        Self {
            chunk_id_metadata_keys: default_chunk_id_metadata_keys(),
        }
    }
}

/// What reading spans needs to know of the configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadSettings<'a> {
    pub(crate) spans: &'a SpansConfig,
    /// `store.store_content`: whether derived query text is kept.
    pub(crate) store_content: bool,
}

/// The most distinct error messages kept for the partial-success message.
const MAX_ERRORS: usize = 3;

/// What one request yielded.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) batch: IngestBatch,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    errors: Vec<String>,
}

impl Parsed {
    fn reject(&mut self, message: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message());
        }
    }

    /// The OTLP partial-success message: empty when nothing was rejected.
    pub(crate) fn error_message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        let mut message = format!(
            "{} spans rejected: {}",
            self.rejected,
            self.errors.join("; ")
        );
        if self.rejected as usize > self.errors.len() {
            message.push_str("; …");
        }
        message
    }
}

/// Reads a request. Spans that are neither responses, retrieval steps nor feedback are
/// accepted and dropped.
pub(crate) fn parse(request: &ExportTraceServiceRequest, settings: ReadSettings<'_>) -> Parsed {
    let mut parsed = Parsed::default();
    let now = now_unix_nano();
    for resource_spans in &request.resource_spans {
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                match read_span(span, now, settings, &mut parsed.batch) {
                    Ok(()) => parsed.accepted += 1,
                    Err(error) => parsed.reject(|| error),
                }
            }
        }
    }
    crate::lineage::read(request, &mut parsed.batch);
    parsed
}

/// The attributes of one span that matter, with foreign keys mapped to closedloop's.
#[derive(Default)]
struct Attrs<'a> {
    known: BTreeMap<&'static str, &'a AnyValue>,
    /// Indexed foreign keys: (attribute, index) → value.
    indexed: BTreeMap<(&'static str, usize), &'a AnyValue>,
    oi_kind: Option<&'a str>,
    oll_request_type: Option<&'a str>,
    db_system: Option<&'a str>,
    reranker_ids: BTreeMap<usize, &'a AnyValue>,
}

fn as_str(value: &AnyValue) -> Option<&str> {
    match value.value.as_ref()? {
        Value::StringValue(text) => Some(text),
        _ => None,
    }
}

fn as_f64(value: &AnyValue) -> Option<f64> {
    match value.value.as_ref()? {
        Value::DoubleValue(number) => Some(*number),
        Value::IntValue(number) => Some(*number as f64),
        Value::StringValue(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|number: &f64| number.is_finite())
}

/// A list of strings: an array attribute, or a JSON array in a string attribute.
fn as_strings(value: &AnyValue) -> Option<Vec<String>> {
    match value.value.as_ref()? {
        Value::ArrayValue(array) => Some(
            array
                .values
                .iter()
                .filter_map(|item| match item.value.as_ref()? {
                    Value::StringValue(text) => Some(text.clone()),
                    Value::IntValue(number) => Some(number.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        Value::StringValue(text) => serde_json::from_str::<Vec<String>>(text).ok(),
        _ => None,
    }
}

fn parse_index(text: &str) -> Option<usize> {
    (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn indexed_key(key: &str, prefix: &str, suffix: &str) -> Option<usize> {
    parse_index(key.strip_prefix(prefix)?.strip_suffix(suffix)?)
}

/// Every closedloop key this module reads directly.
const OWN_KEYS: &[&str] = &[
    attr::GEN_AI_OPERATION_NAME,
    attr::GEN_AI_PROVIDER_NAME,
    attr::GEN_AI_REQUEST_MODEL,
    attr::GEN_AI_RESPONSE_MODEL,
    attr::GEN_AI_RESPONSE_ID,
    attr::GEN_AI_REQUEST_MAX_TOKENS,
    attr::GEN_AI_REQUEST_TEMPERATURE,
    attr::GEN_AI_REQUEST_TOP_P,
    attr::GEN_AI_REQUEST_TOP_K,
    attr::GEN_AI_REQUEST_STOP_SEQUENCES,
    attr::GEN_AI_REQUEST_FREQUENCY_PENALTY,
    attr::GEN_AI_REQUEST_PRESENCE_PENALTY,
    attr::GEN_AI_REQUEST_SEED,
    attr::GEN_AI_REQUEST_CHOICE_COUNT,
    attr::GEN_AI_CONVERSATION_ID,
    attr::GEN_AI_DATA_SOURCE_ID,
    attr::GEN_AI_PROMPT_NAME,
    attr::GEN_AI_INPUT_MESSAGES,
    attr::GEN_AI_OUTPUT_MESSAGES,
    attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID,
    attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION,
    attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH,
    attr::CLOSEDLOOP_PROMPT_TEMPLATE_TEXT,
    attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS,
    attr::CLOSEDLOOP_RETRIEVAL_STAGE,
    attr::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS,
    attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION,
    attr::CLOSEDLOOP_QUERY_FINGERPRINT,
    attr::CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT,
    attr::CLOSEDLOOP_QUERY_TEXT,
    attr::CLOSEDLOOP_FEEDBACK_SIGNAL,
    attr::CLOSEDLOOP_FEEDBACK_KIND,
    attr::CLOSEDLOOP_FEEDBACK_VALUE,
    attr::CLOSEDLOOP_FEEDBACK_SOURCE,
    attr::CLOSEDLOOP_FEEDBACK_COMMENT,
    attr::CLOSEDLOOP_FEEDBACK_ID,
    attr::CLOSEDLOOP_FAILURE_CATEGORY,
    attr::SESSION_ID,
    attr::USER_ID,
];

impl<'a> Attrs<'a> {
    fn read(attributes: &'a [KeyValue]) -> Self {
        let mut attrs = Attrs::default();
        for KeyValue { key, value, .. } in attributes {
            let Some(value) = value.as_ref() else {
                continue;
            };
            attrs.add(key, value);
        }
        attrs
    }

    fn add(&mut self, key: &'a str, value: &'a AnyValue) {
        if let Some(&own) = OWN_KEYS.iter().find(|&&own| own == key) {
            // The closedloop / GenAI key wins over a foreign equivalent.
            self.known.insert(own, value);
            return;
        }
        match key {
            foreign::OPENINFERENCE_SPAN_KIND => self.oi_kind = as_str(value),
            foreign::LLM_REQUEST_TYPE => self.oll_request_type = as_str(value),
            foreign::DB_SYSTEM => self.db_system = as_str(value),
            _ => {}
        }
        if let Some(index) = indexed_key(
            key,
            foreign::RERANKER_OUTPUT_PREFIX,
            foreign::DOCUMENT_ID_SUFFIX,
        ) {
            self.reranker_ids.insert(index, value);
            return;
        }
        if let Some(found) = compat::match_foreign(key) {
            match found.index {
                Some(index) => {
                    self.indexed.insert((found.attribute, index), value);
                }
                None => {
                    self.known.entry(found.attribute).or_insert(value);
                }
            }
        }
    }

    fn get(&self, key: &str) -> Option<&'a AnyValue> {
        self.known.get(key).copied()
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(as_str).map(str::to_owned)
    }

    fn strings(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).and_then(as_strings)
    }

    /// The values of an indexed foreign key, in index order.
    fn indexed(&self, key: &'static str) -> impl Iterator<Item = (usize, &'a AnyValue)> + '_ {
        self.indexed
            .range((key, 0)..=(key, usize::MAX))
            .map(|(&(_, index), &value)| (index, value))
    }

    /// Whether the span carries OpenInference annotations (`annotations.<i>.annotation.*`).
    fn has_annotations(&self) -> bool {
        [
            attr::GEN_AI_EVALUATION_NAME,
            attr::GEN_AI_EVALUATION_SCORE_LABEL,
            attr::CLOSEDLOOP_FEEDBACK_VALUE,
        ]
        .into_iter()
        .any(|key| self.indexed(key).next().is_some())
    }

    fn is_llm(&self) -> bool {
        let op = self.get(attr::GEN_AI_OPERATION_NAME).and_then(as_str);
        if let Some(op) = op {
            return [
                GenAiOperationName::Chat,
                GenAiOperationName::GenerateContent,
                GenAiOperationName::TextCompletion,
            ]
            .iter()
            .any(|name| name.as_str() == op);
        }
        self.oi_kind == Some(foreign::OI_LLM)
            || matches!(
                self.oll_request_type,
                Some(foreign::OLL_CHAT | foreign::OLL_COMPLETION)
            )
    }

    fn retrieval_stage(&self) -> Option<RetrievalStage> {
        if let Some(stage) = self
            .get(attr::CLOSEDLOOP_RETRIEVAL_STAGE)
            .and_then(as_str)
            .and_then(|stage| stage.parse().ok())
        {
            return Some(stage);
        }
        let op = self.get(attr::GEN_AI_OPERATION_NAME).and_then(as_str);
        if op == Some(GenAiOperationName::Retrieval.as_str())
            || op == Some(foreign::OLL_VECTOR_DB_RETRIEVE)
            || self.oi_kind == Some(foreign::OI_RETRIEVER)
            || self
                .db_system
                .is_some_and(|system| VECTOR_DBS.contains(&system))
        {
            return Some(RetrievalStage::Retrieve);
        }
        (self.oi_kind == Some(foreign::OI_RERANKER)).then_some(RetrievalStage::Rerank)
    }
}

fn hex_ids(span: &Span) -> String {
    format!(
        "{}/{}",
        hex::encode(&span.trace_id),
        hex::encode(&span.span_id)
    )
}

fn read_span(
    span: &Span,
    now: u64,
    settings: ReadSettings<'_>,
    batch: &mut IngestBatch,
) -> Result<(), String> {
    let Some(span_ref) = SpanRef::from_bytes(&span.trace_id, &span.span_id) else {
        return Err(format!(
            "span `{}` has an invalid trace id or span id ({} and {} bytes, 16 and 8 non-zero expected)",
            span.name,
            span.trace_id.len(),
            span.span_id.len()
        ));
    };
    let attrs = Attrs::read(&span.attributes);
    if attrs.get(attr::CLOSEDLOOP_FEEDBACK_SIGNAL).is_some() {
        let feedback = read_feedback(span, span_ref, &attrs, now)
            .map_err(|error| format!("feedback span {}: {error}", hex_ids(span)))?;
        batch.feedback.push(feedback);
        return Ok(());
    }
    if attrs.has_annotations() {
        read_annotations(span, span_ref, &attrs, now, batch);
        return Ok(());
    }
    if attrs.is_llm() {
        let (response, derived_query) = read_response(span, span_ref, &attrs);
        if derived_query {
            batch.derived_queries.insert(span_ref);
        }
        batch.responses.push(response);
        return Ok(());
    }
    if let Some(stage) = attrs.retrieval_stage() {
        if let Some(retrieval) = read_retrieval(span, span_ref, &attrs, stage, settings) {
            batch.retrievals.push(retrieval);
        }
    }
    Ok(())
}

/// `sha256:` and the hex SHA-256 of a template's text.
pub(crate) fn template_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hash = String::with_capacity(7 + 64);
    hash.push_str("sha256:");
    for byte in digest {
        let _ = write!(hash, "{byte:02x}");
    }
    hash
}

/// The request parameters as a compact JSON object (sorted keys, so equal sets intern once).
fn parameters(attrs: &Attrs<'_>) -> Option<String> {
    const KEYS: &[&str] = &[
        attr::GEN_AI_REQUEST_MAX_TOKENS,
        attr::GEN_AI_REQUEST_TEMPERATURE,
        attr::GEN_AI_REQUEST_TOP_P,
        attr::GEN_AI_REQUEST_TOP_K,
        attr::GEN_AI_REQUEST_STOP_SEQUENCES,
        attr::GEN_AI_REQUEST_FREQUENCY_PENALTY,
        attr::GEN_AI_REQUEST_PRESENCE_PENALTY,
        attr::GEN_AI_REQUEST_SEED,
        attr::GEN_AI_REQUEST_CHOICE_COUNT,
    ];
    let mut map = serde_json::Map::new();
    for &key in KEYS {
        let Some(value) = attrs.get(key).and_then(|value| value.value.as_ref()) else {
            continue;
        };
        let json = match value {
            Value::IntValue(number) => serde_json::Value::from(*number),
            Value::DoubleValue(number) => serde_json::Number::from_f64(*number)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::StringValue(text) => serde_json::Value::from(text.as_str()),
            Value::BoolValue(flag) => serde_json::Value::from(*flag),
            Value::ArrayValue(array) => {
                serde_json::Value::from(array.values.iter().filter_map(as_str).collect::<Vec<_>>())
            }
            _ => continue,
        };
        map.insert(key.to_owned(), json);
    }
    (!map.is_empty()).then(|| serde_json::Value::Object(map).to_string())
}

/// Content given as an indexed foreign key (OpenLLMetry `gen_ai.prompt.<i>.content`) becomes
/// a JSON array of its values in index order.
fn content(attrs: &Attrs<'_>, key: &'static str) -> Option<String> {
    if let Some(text) = attrs.string(key) {
        return Some(text);
    }
    let parts: Vec<&str> = attrs
        .indexed(key)
        .filter_map(|(_, value)| as_str(value))
        .collect();
    (!parts.is_empty()).then(|| serde_json::Value::from(parts).to_string())
}

/// The hash's first `digits` hex digits (`None` for a hash that is not `sha256:<hex>`).
fn hash_prefix(hash: &str, digits: usize) -> Option<&str> {
    hash.strip_prefix("sha256:")?.get(..digits)
}

/// A query's fingerprint as closedloop-tracing computes it.
fn fingerprint(query: &str) -> String {
    closedloop_tracing::fingerprint(query).to_string()
}

/// Reads an LLM span; the flag says whether its fingerprint was derived from its input
/// messages (and so gives way to its trace's retrieval query).
fn read_response(span: &Span, span_ref: SpanRef, attrs: &Attrs<'_>) -> (Response, bool) {
    let messages = derive::input_messages(span);
    let explicit_text = attrs.string(attr::CLOSEDLOOP_PROMPT_TEMPLATE_TEXT);
    let system_text = explicit_text
        .is_none()
        .then(|| derive::system_text(span, &messages))
        .flatten();
    let hash = attrs
        .string(attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH)
        .or_else(|| explicit_text.as_deref().map(template_hash))
        .or_else(|| system_text.as_deref().map(template_hash));
    let version = attrs
        .string(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION)
        .or_else(|| Some(hash_prefix(hash.as_deref()?, 12)?.to_owned()));
    let id = attrs
        .string(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID)
        .or_else(|| attrs.string(attr::GEN_AI_PROMPT_NAME))
        .or_else(|| Some(format!("auto-{}", hash_prefix(hash.as_deref()?, 8)?)));
    // The system messages are the app's instructions, but once rendered they may hold
    // retrieved documents and user data: only their hash is kept, never their text (the
    // templates table outlives content retention).
    let text = explicit_text;

    let explicit_query = attrs.string(attr::CLOSEDLOOP_QUERY_TEXT);
    let explicit_fingerprint = attrs.string(attr::CLOSEDLOOP_QUERY_FINGERPRINT);
    let derived_query = explicit_query
        .is_none()
        .then(|| derive::llm_query(span, &messages))
        .flatten();
    let derived = explicit_fingerprint.is_none() && derived_query.is_some();
    let query = explicit_query.or(derived_query);
    let fingerprint = explicit_fingerprint.or_else(|| query.as_deref().map(fingerprint));

    let response = Response {
        span: Some(span_ref),
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        response_id: attrs
            .string(attr::GEN_AI_RESPONSE_ID)
            .or_else(|| derive::output_response_id(span)),
        template: Template {
            id,
            version,
            hash,
            text,
        },
        chunk_ids: attrs.strings(attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS),
        model: attrs
            .string(attr::GEN_AI_REQUEST_MODEL)
            .or_else(|| derive::invocation_model(span))
            .or_else(|| attrs.string(attr::GEN_AI_RESPONSE_MODEL)),
        provider: attrs.string(attr::GEN_AI_PROVIDER_NAME),
        parameters: parameters(attrs),
        data_source: attrs.string(attr::GEN_AI_DATA_SOURCE_ID),
        index_version: attrs.string(attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION),
        session_id: attrs
            .string(attr::SESSION_ID)
            .or_else(|| attrs.string(attr::GEN_AI_CONVERSATION_ID)),
        user_id: attrs.string(attr::USER_ID),
        fingerprint,
        semantic_fingerprint: attrs.string(attr::CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT),
        content: Content {
            input: content(attrs, attr::GEN_AI_INPUT_MESSAGES),
            output: content(attrs, attr::GEN_AI_OUTPUT_MESSAGES),
            query,
        },
    };
    (response, derived)
}

fn read_retrieval(
    span: &Span,
    span_ref: SpanRef,
    attrs: &Attrs<'_>,
    stage: RetrievalStage,
    settings: ReadSettings<'_>,
) -> Option<Retrieval> {
    let metadata_keys = &settings.spans.chunk_id_metadata_keys;
    let non_empty = |ids: Vec<String>| (!ids.is_empty()).then_some(ids);
    let chunk_ids = attrs
        .strings(attr::CLOSEDLOOP_RETRIEVAL_CHUNK_IDS)
        .or_else(|| {
            (stage == RetrievalStage::Rerank)
                .then(|| {
                    attrs
                        .reranker_ids
                        .values()
                        .filter_map(|value| as_str(value))
                        .map(str::to_owned)
                        .collect()
                })
                .and_then(non_empty)
        })
        .or_else(|| non_empty(derive::openinference_document_ids(span, metadata_keys)))
        // OpenLLMetry: one `db.query.result` event per result.
        .or_else(|| {
            non_empty(derive::db_result_ids(
                span,
                foreign::DB_QUERY_RESULT_EVENT,
                metadata_keys,
            ))
        })
        .or_else(|| non_empty(derive::traceloop_document_ids(span, metadata_keys)));
    let query = attrs
        .string(attr::CLOSEDLOOP_QUERY_TEXT)
        .or_else(|| derive::retrieval_query(span));
    let fingerprint = attrs
        .string(attr::CLOSEDLOOP_QUERY_FINGERPRINT)
        .or_else(|| query.as_deref().map(fingerprint));
    if chunk_ids.is_none() && fingerprint.is_none() {
        return None;
    }
    Some(Retrieval {
        trace_id: span_ref.trace_id,
        end_unix_nano: span.end_time_unix_nano,
        stage,
        chunk_ids,
        fingerprint,
        // Content: held (in the join's memory of recent retrievals) only when it is stored.
        query: query.filter(|_| settings.store_content),
        data_source: attrs.string(attr::GEN_AI_DATA_SOURCE_ID),
        index_version: attrs.string(attr::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION),
    })
}

/// The judged span: the link typed `judged_response`, else the only link.
fn judged_link(span: &Span) -> Result<Option<SpanRef>, String> {
    let typed = span.links.iter().find(|link| {
        link.attributes.iter().any(|kv| {
            kv.key == attr::CLOSEDLOOP_LINK_TYPE
                && kv.value.as_ref().and_then(as_str) == Some(LinkType::JudgedResponse.as_str())
        })
    });
    let link = match typed {
        Some(link) => link,
        None if span.links.len() == 1 => &span.links[0],
        None => return Ok(None),
    };
    SpanRef::from_bytes(&link.trace_id, &link.span_id)
        .map(Some)
        .ok_or_else(|| "its span link has an invalid trace id or span id".to_owned())
}

fn parse_enum<T: std::str::FromStr<Err = closedloop_semconv::UnknownValue>>(
    attrs: &Attrs<'_>,
    key: &str,
) -> Result<Option<T>, String> {
    match attrs.get(key) {
        None => Ok(None),
        Some(value) => match as_str(value) {
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|error: closedloop_semconv::UnknownValue| error.to_string()),
            None => Err(format!("attribute `{key}` is not a string")),
        },
    }
}

fn read_feedback(
    span: &Span,
    span_ref: SpanRef,
    attrs: &Attrs<'_>,
    now: u64,
) -> Result<Feedback, String> {
    let signal: FeedbackSignal = parse_enum(attrs, attr::CLOSEDLOOP_FEEDBACK_SIGNAL)?
        .ok_or_else(|| "no signal".to_owned())?;
    let kind: Option<FeedbackKind> = parse_enum(attrs, attr::CLOSEDLOOP_FEEDBACK_KIND)?;
    let source: Option<FeedbackSource> = parse_enum(attrs, attr::CLOSEDLOOP_FEEDBACK_SOURCE)?;
    let category: Option<FailureCategory> = parse_enum(attrs, attr::CLOSEDLOOP_FAILURE_CATEGORY)?;
    let value = attrs.get(attr::CLOSEDLOOP_FEEDBACK_VALUE).and_then(as_f64);
    let target = judged_link(span)?;
    let response_id = attrs.string(attr::GEN_AI_RESPONSE_ID);
    if target.is_none() && response_id.is_none() {
        return Err("no span link to the judged span and no gen_ai.response.id".to_owned());
    }
    Ok(Feedback {
        feedback_id: attrs
            .string(attr::CLOSEDLOOP_FEEDBACK_ID)
            .unwrap_or_else(|| span_feedback_id(span_ref, None)),
        span: Some(span_ref),
        target,
        response_id,
        signal,
        kind: kind.unwrap_or_else(|| rules::default_kind(signal)),
        value,
        category,
        source: source.unwrap_or(FeedbackSource::User),
        // Content: the pipeline drops it unless comments are captured.
        comment: attrs.string(attr::CLOSEDLOOP_FEEDBACK_COMMENT),
        session_id: attrs.string(attr::SESSION_ID),
        user_id: attrs.string(attr::USER_ID),
        time_unix_nano: feedback_time(span, now),
    })
}

fn feedback_time(span: &Span, now: u64) -> u64 {
    [span.end_time_unix_nano, span.start_time_unix_nano, now]
        .into_iter()
        .find(|&time| time != 0)
        .unwrap_or(now)
}

/// The idempotency id of feedback that came as a span without `closedloop.feedback.id`: the
/// span's ids, so an OTLP retry of the same span is counted once.
fn span_feedback_id(span: SpanRef, annotation: Option<usize>) -> String {
    let mut id = format!(
        "span:{}{}",
        hex::encode(span.trace_id),
        hex::encode(span.span_id)
    );
    if let Some(index) = annotation {
        let _ = write!(id, "/{index}");
    }
    id
}

/// Labels that OpenInference annotators commonly write for a failing or passing response.
const FAIL_LABELS: &[&str] = &[
    "fail",
    "failed",
    "bad",
    "negative",
    "incorrect",
    "wrong",
    "thumbs_down",
    "thumbs-down",
    "down",
];
const PASS_LABELS: &[&str] = &[
    "pass",
    "passed",
    "good",
    "positive",
    "correct",
    "right",
    "thumbs_up",
    "thumbs-up",
    "up",
];

/// OpenInference annotation carrier spans: one feedback item per annotation index. An
/// annotation whose name or label is a closedloop signal uses it; otherwise a score in
/// [0, 1] is a rating and a pass/fail label a thumbs up/down. Annotations that say neither
/// (free-form evaluator labels) are not feedback and are skipped.
fn read_annotations(
    span: &Span,
    span_ref: SpanRef,
    attrs: &Attrs<'_>,
    now: u64,
    batch: &mut IngestBatch,
) {
    // Ended spans are immutable, so annotations live on a carrier span whose one link is the
    // judged span; a carrier without a usable link cannot be joined and carries nothing.
    let Ok(Some(target)) = judged_link(span) else {
        return;
    };
    let mut indices: Vec<usize> = [
        attr::GEN_AI_EVALUATION_NAME,
        attr::GEN_AI_EVALUATION_SCORE_LABEL,
        attr::CLOSEDLOOP_FEEDBACK_VALUE,
    ]
    .into_iter()
    .flat_map(|key| attrs.indexed(key).map(|(index, _)| index))
    .collect();
    indices.sort_unstable();
    indices.dedup();
    let scores: BTreeMap<usize, f64> = attrs
        .indexed(attr::CLOSEDLOOP_FEEDBACK_VALUE)
        .filter_map(|(index, value)| Some((index, as_f64(value)?)))
        .collect();
    let text_at = |key: &'static str, index: usize| {
        attrs
            .indexed(key)
            .find(|&(at, _)| at == index)
            .and_then(|(_, value)| as_str(value))
    };
    for index in indices {
        let name = text_at(attr::GEN_AI_EVALUATION_NAME, index);
        let label = text_at(attr::GEN_AI_EVALUATION_SCORE_LABEL, index);
        let score = scores.get(&index).copied();
        let named = name
            .and_then(|name| name.parse::<FeedbackSignal>().ok())
            .or_else(|| label.and_then(|label| label.parse::<FeedbackSignal>().ok()));
        let label_lower = label.map(str::to_ascii_lowercase);
        let (signal, value) = match (named, score, label_lower.as_deref()) {
            (Some(signal), score, _) => (signal, score),
            (None, _, Some(label)) if FAIL_LABELS.contains(&label) => {
                (FeedbackSignal::ThumbsDown, Some(0.0))
            }
            (None, _, Some(label)) if PASS_LABELS.contains(&label) => {
                (FeedbackSignal::ThumbsUp, Some(1.0))
            }
            (None, Some(score), _) if (0.0..=1.0).contains(&score) => {
                (FeedbackSignal::Rating, Some(score))
            }
            _ => continue,
        };
        let source = match text_at(attr::CLOSEDLOOP_FEEDBACK_SOURCE, index) {
            Some("HUMAN") | None => FeedbackSource::User,
            Some(_) => FeedbackSource::Detector,
        };
        batch.feedback.push(Feedback {
            feedback_id: span_feedback_id(span_ref, Some(index)),
            span: Some(span_ref),
            target: Some(target),
            response_id: attrs.string(attr::GEN_AI_RESPONSE_ID),
            signal,
            kind: rules::default_kind(signal),
            value,
            category: None,
            source,
            comment: text_at(attr::CLOSEDLOOP_FEEDBACK_COMMENT, index).map(str::to_owned),
            session_id: attrs.string(attr::SESSION_ID),
            user_id: attrs.string(attr::USER_ID),
            time_unix_nano: feedback_time(span, now),
        });
    }
}

#[cfg(test)]
mod tests;
