//! Span helpers for generation, retrieval, rerank, embedding and request spans.

use closedloop_semconv::attribute::{
    self, GenAiOperationName, RetrievalStage, CLOSEDLOOP_QUERY_TEXT, GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES, GEN_AI_REQUEST_STOP_SEQUENCES, GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RETRIEVAL_QUERY_TEXT,
};
use closedloop_semconv::span as span_name;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::content::{ContentKind, ContentPolicy};
use crate::fingerprint::fingerprint;
use crate::layer::{ClosedloopLayer, Update};
use crate::semantic::SemanticFingerprint;
use crate::ResponseRef;

/// The content policy of the layer installed in the current dispatcher (default if none).
fn current_policy() -> ContentPolicy {
    tracing::dispatcher::get_default(|dispatch| {
        ClosedloopLayer::find(dispatch)
            .map(ClosedloopLayer::content_policy)
            .unwrap_or_default()
    })
}

/// Sends an update to the layer that owns `span`, if there is one.
fn update(span: &tracing::Span, make: impl FnOnce(&ContentPolicy) -> Option<Update>) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(layer) = ClosedloopLayer::find(dispatch) {
            if let Some(update) = make(&layer.content_policy()) {
                layer.update(dispatch, id, update);
            }
        }
    });
}

/// A single-message JSON array in the GenAI message format.
fn messages_json(role: &str, text: &str) -> String {
    serde_json::json!([{ "role": role, "parts": [{ "type": "text", "content": text }] }])
        .to_string()
}

/// Starts describing a generation (inference) span: `chat gpt-4o`, kind CLIENT.
pub fn generation(operation: GenAiOperationName, model: impl Into<String>) -> GenerationBuilder {
    GenerationBuilder {
        operation,
        model: model.into(),
        provider: None,
        max_tokens: None,
        temperature: None,
        top_p: None,
        top_k: None,
        frequency_penalty: None,
        presence_penalty: None,
        seed: None,
        choice_count: None,
        stop_sequences: Vec::new(),
        conversation_id: None,
    }
}

/// Describes a generation span before it starts; see [`generation`].
#[derive(Debug, Clone)]
pub struct GenerationBuilder {
    operation: GenAiOperationName,
    model: String,
    provider: Option<String>,
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    seed: Option<i64>,
    choice_count: Option<i64>,
    stop_sequences: Vec<String>,
    conversation_id: Option<String>,
}

impl GenerationBuilder {
    /// Sets `gen_ai.provider.name` (`openai`, `anthropic`, ...).
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Sets `gen_ai.request.max_tokens`.
    pub fn with_max_tokens(mut self, max_tokens: i64) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets `gen_ai.request.temperature`.
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets `gen_ai.request.top_p`.
    pub fn with_top_p(mut self, top_p: f64) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Sets `gen_ai.request.top_k` (the sampling parameter, not the number of chunks).
    pub fn with_top_k(mut self, top_k: f64) -> Self {
        self.top_k = Some(top_k);
        self
    }

    /// Sets `gen_ai.request.frequency_penalty`.
    pub fn with_frequency_penalty(mut self, penalty: f64) -> Self {
        self.frequency_penalty = Some(penalty);
        self
    }

    /// Sets `gen_ai.request.presence_penalty`.
    pub fn with_presence_penalty(mut self, penalty: f64) -> Self {
        self.presence_penalty = Some(penalty);
        self
    }

    /// Sets `gen_ai.request.seed`.
    pub fn with_seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets `gen_ai.request.choice.count`.
    pub fn with_choice_count(mut self, count: i64) -> Self {
        self.choice_count = Some(count);
        self
    }

    /// Sets `gen_ai.request.stop_sequences`.
    pub fn with_stop_sequences<I>(mut self, sequences: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.stop_sequences = sequences.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `gen_ai.conversation.id`.
    pub fn with_conversation_id(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    /// Creates the span, a child of the current span. Enter it (or instrument a future with it)
    /// around the model call.
    pub fn start(self) -> GenerationSpan {
        let name = span_name::generation_name(self.operation.as_str(), &self.model);
        let span = tracing::info_span!(
            "generation",
            otel.name = %name,
            otel.kind = span_name::GENERATION_SPAN_KIND.as_str(),
            { attribute::GEN_AI_OPERATION_NAME } = self.operation.as_str(),
            { attribute::GEN_AI_PROVIDER_NAME } = self.provider.as_deref(),
            { attribute::GEN_AI_REQUEST_MODEL } = self.model.as_str(),
            { attribute::GEN_AI_REQUEST_MAX_TOKENS } = self.max_tokens,
            { attribute::GEN_AI_REQUEST_TEMPERATURE } = self.temperature,
            { attribute::GEN_AI_REQUEST_TOP_P } = self.top_p,
            { attribute::GEN_AI_REQUEST_TOP_K } = self.top_k,
            { attribute::GEN_AI_REQUEST_FREQUENCY_PENALTY } = self.frequency_penalty,
            { attribute::GEN_AI_REQUEST_PRESENCE_PENALTY } = self.presence_penalty,
            { attribute::GEN_AI_REQUEST_SEED } = self.seed,
            { attribute::GEN_AI_REQUEST_CHOICE_COUNT } = self.choice_count,
            { attribute::GEN_AI_CONVERSATION_ID } = self.conversation_id.as_deref(),
            { attribute::GEN_AI_RESPONSE_ID } = Empty,
            { attribute::GEN_AI_RESPONSE_MODEL } = Empty,
            { attribute::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
            { attribute::GEN_AI_USAGE_OUTPUT_TOKENS } = Empty,
            { attribute::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS } = Empty,
            { attribute::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS } = Empty,
        );
        if !self.stop_sequences.is_empty() {
            let sequences = self
                .stop_sequences
                .into_iter()
                .map(StringValue::from)
                .collect();
            span.set_attribute(
                GEN_AI_REQUEST_STOP_SEQUENCES,
                Value::Array(Array::String(sequences)),
            );
        }
        GenerationSpan { span }
    }
}

/// A generation span; see [`generation`].
#[derive(Debug, Clone)]
pub struct GenerationSpan {
    span: tracing::Span,
}

impl GenerationSpan {
    /// The `tracing` span, to enter or to instrument a future with.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records `gen_ai.response.id` and `gen_ai.response.model`.
    pub fn record_response(&self, id: &str, model: &str) {
        self.span.record(attribute::GEN_AI_RESPONSE_ID, id);
        self.span.record(attribute::GEN_AI_RESPONSE_MODEL, model);
    }

    /// Records `gen_ai.response.finish_reasons`.
    pub fn record_finish_reasons(&self, reasons: &[&str]) {
        let reasons = reasons
            .iter()
            .map(|r| StringValue::from((*r).to_owned()))
            .collect();
        self.span.set_attribute(
            GEN_AI_RESPONSE_FINISH_REASONS,
            Value::Array(Array::String(reasons)),
        );
    }

    /// Records `gen_ai.usage.input_tokens` and `gen_ai.usage.output_tokens`.
    pub fn record_usage(&self, input_tokens: i64, output_tokens: i64) {
        self.span
            .record(attribute::GEN_AI_USAGE_INPUT_TOKENS, input_tokens);
        self.span
            .record(attribute::GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens);
    }

    /// Records `gen_ai.usage.cache_read.input_tokens`.
    pub fn record_cache_read_tokens(&self, tokens: i64) {
        self.span
            .record(attribute::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, tokens);
    }

    /// Records `gen_ai.usage.reasoning.output_tokens`.
    pub fn record_reasoning_tokens(&self, tokens: i64) {
        self.span
            .record(attribute::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, tokens);
    }

    /// Records the prompt sent to the model as `gen_ai.input.messages`, only when prompt capture
    /// is on, after the redaction hook.
    pub fn record_input(&self, prompt: &str) {
        update(&self.span, |policy| {
            let text = policy.capture(ContentKind::Prompt, prompt)?;
            Some(Update::Attributes(vec![KeyValue::new(
                GEN_AI_INPUT_MESSAGES,
                messages_json("user", &text),
            )]))
        });
    }

    /// Records the model's answer as `gen_ai.output.messages`, only when output capture is on,
    /// after the redaction hook.
    pub fn record_output(&self, answer: &str) {
        update(&self.span, |policy| {
            let text = policy.capture(ContentKind::Output, answer)?;
            Some(Update::Attributes(vec![KeyValue::new(
                GEN_AI_OUTPUT_MESSAGES,
                messages_json("assistant", &text),
            )]))
        });
    }

    /// The reference to hand to the client with the answer; `None` without an OpenTelemetry
    /// layer.
    pub fn response_ref(&self) -> Option<ResponseRef> {
        ResponseRef::from_span(&self.span)
    }
}

/// Starts describing a first-stage retrieval span: `retrieval my-index`, kind CLIENT.
pub fn retrieval(data_source: impl Into<String>) -> RetrievalBuilder {
    RetrievalBuilder::new(RetrievalStage::Retrieve, data_source.into())
}

/// Starts describing a rerank span over earlier results: `rerank my-index`, kind INTERNAL.
pub fn rerank(data_source: impl Into<String>) -> RetrievalBuilder {
    RetrievalBuilder::new(RetrievalStage::Rerank, data_source.into())
}

/// Starts describing a filter span that drops chunks: `filter my-index`, kind INTERNAL.
pub fn filter(data_source: impl Into<String>) -> RetrievalBuilder {
    RetrievalBuilder::new(RetrievalStage::Filter, data_source.into())
}

/// Describes a retrieval, rerank or filter span before it starts.
#[derive(Debug, Clone)]
pub struct RetrievalBuilder {
    stage: RetrievalStage,
    data_source: String,
    index_version: Option<String>,
    top_k: Option<i64>,
    model: Option<String>,
}

impl RetrievalBuilder {
    fn new(stage: RetrievalStage, data_source: String) -> Self {
        RetrievalBuilder {
            stage,
            data_source,
            index_version: None,
            top_k: None,
            model: None,
        }
    }

    /// Sets `closedloop.retrieval.index.version`, which is carried to the generation span.
    pub fn with_index_version(mut self, version: impl Into<String>) -> Self {
        self.index_version = Some(version.into());
        self
    }

    /// Sets `closedloop.retrieval.top_k`.
    pub fn with_top_k(mut self, top_k: i64) -> Self {
        self.top_k = Some(top_k);
        self
    }

    /// Sets `gen_ai.request.model`, for a reranking model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Creates the span, a child of the current span.
    pub fn start(self) -> RetrievalSpan {
        let (name, kind, operation) = match self.stage {
            RetrievalStage::Retrieve => (
                span_name::retrieval_name(&self.data_source),
                span_name::RETRIEVAL_SPAN_KIND,
                Some(GenAiOperationName::Retrieval.as_str()),
            ),
            stage => (
                span_name::rerank_name(stage.as_str(), &self.data_source),
                span_name::RERANK_SPAN_KIND,
                None,
            ),
        };
        let span = tracing::info_span!(
            "retrieval",
            otel.name = %name,
            otel.kind = kind.as_str(),
            { attribute::GEN_AI_OPERATION_NAME } = operation,
            { attribute::CLOSEDLOOP_RETRIEVAL_STAGE } = self.stage.as_str(),
            { attribute::GEN_AI_DATA_SOURCE_ID } = self.data_source.as_str(),
            { attribute::CLOSEDLOOP_RETRIEVAL_INDEX_VERSION } = self.index_version.as_deref(),
            { attribute::CLOSEDLOOP_RETRIEVAL_TOP_K } = self.top_k,
            { attribute::GEN_AI_REQUEST_MODEL } = self.model.as_deref(),
        );
        RetrievalSpan { span }
    }
}

/// A retrieval, rerank or filter span; see [`retrieval`], [`rerank`] and [`filter`].
#[derive(Debug, Clone)]
pub struct RetrievalSpan {
    span: tracing::Span,
}

impl RetrievalSpan {
    /// The `tracing` span, to enter or to instrument a future with.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records the returned chunk IDs, best first, and their scores as typed
    /// `closedloop.retrieval.chunk_ids` and `closedloop.retrieval.chunk_scores`. The IDs become
    /// the context of the generation spans that follow in the same request.
    pub fn record_chunks<I>(&self, ids: I, scores: Option<&[f64]>)
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        update(&self.span, |_| {
            // Each ID is shared (`Arc<str>`): the retrieval span's attribute, the carried
            // context and the generation span's attribute then clone pointers, not text.
            let ids: std::sync::Arc<[StringValue]> = ids
                .into_iter()
                .map(|id| StringValue::from(std::sync::Arc::<str>::from(id.into())))
                .collect();
            let scores = scores.map(std::sync::Arc::from);
            Some(Update::Chunks { ids, scores })
        });
    }

    /// Records the query text sent to the index (`gen_ai.retrieval.query.text`), only when
    /// query capture is on, after the redaction hook.
    pub fn record_query_text(&self, query: &str) {
        update(&self.span, |policy| {
            let text = policy.capture(ContentKind::Query, query)?;
            Some(Update::Attributes(vec![KeyValue::new(
                GEN_AI_RETRIEVAL_QUERY_TEXT,
                text.into_owned(),
            )]))
        });
    }
}

/// Starts describing an embeddings span: `embeddings text-embedding-3-small`, kind CLIENT.
pub fn embedding(model: impl Into<String>) -> EmbeddingBuilder {
    EmbeddingBuilder {
        model: model.into(),
        provider: None,
        dimension_count: None,
        data_source: None,
    }
}

/// Describes an embeddings span before it starts; see [`embedding`].
#[derive(Debug, Clone)]
pub struct EmbeddingBuilder {
    model: String,
    provider: Option<String>,
    dimension_count: Option<i64>,
    data_source: Option<String>,
}

impl EmbeddingBuilder {
    /// Sets `gen_ai.provider.name`.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Sets `gen_ai.embeddings.dimension.count`.
    pub fn with_dimension_count(mut self, count: i64) -> Self {
        self.dimension_count = Some(count);
        self
    }

    /// Sets `gen_ai.data_source.id`.
    pub fn with_data_source(mut self, data_source: impl Into<String>) -> Self {
        self.data_source = Some(data_source.into());
        self
    }

    /// Creates the span, a child of the current span.
    pub fn start(self) -> tracing::Span {
        let name = span_name::embedding_name(&self.model);
        tracing::info_span!(
            "embedding",
            otel.name = %name,
            otel.kind = span_name::EMBEDDING_SPAN_KIND.as_str(),
            { attribute::GEN_AI_OPERATION_NAME } = GenAiOperationName::Embeddings.as_str(),
            { attribute::GEN_AI_PROVIDER_NAME } = self.provider.as_deref(),
            { attribute::GEN_AI_REQUEST_MODEL } = self.model.as_str(),
            { attribute::GEN_AI_EMBEDDINGS_DIMENSION_COUNT } = self.dimension_count,
            { attribute::GEN_AI_DATA_SOURCE_ID } = self.data_source.as_deref(),
            { attribute::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
        )
    }
}

/// Starts describing the span of one user request (one turn), named `name`.
///
/// Session, user, turn, conversation and query fingerprint set here are copied onto every
/// generation span created below it.
pub fn request(name: impl Into<String>) -> RequestBuilder {
    RequestBuilder {
        name: name.into(),
        session_id: None,
        user_id: None,
        turn_index: None,
        conversation_id: None,
        query: None,
        semantic_fingerprint: None,
    }
}

/// Describes a request span before it starts; see [`request`].
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    name: String,
    session_id: Option<String>,
    user_id: Option<String>,
    turn_index: Option<i64>,
    conversation_id: Option<String>,
    query: Option<String>,
    semantic_fingerprint: Option<SemanticFingerprint>,
}

impl RequestBuilder {
    /// Sets `session.id`.
    pub fn with_session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Sets `user.id`, hashed when the layer hashes user IDs.
    pub fn with_user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Sets `closedloop.turn.index`, the zero-based position of this request in its session.
    pub fn with_turn_index(mut self, index: i64) -> Self {
        self.turn_index = Some(index);
        self
    }

    /// Sets `gen_ai.conversation.id`.
    pub fn with_conversation_id(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    /// Sets the user's query: its fingerprint (`closedloop.query.fingerprint`) always, its text
    /// (`closedloop.query.text`) only when query capture is on, after the redaction hook.
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// Sets the query's semantic fingerprint (`closedloop.query.semantic_fingerprint`), made
    /// with [`SemanticHasher::fingerprint`](crate::SemanticHasher::fingerprint) from the
    /// embedding the application computed for retrieval. Exported only when query-embedding
    /// capture ([`ContentKind::QueryEmbedding`]) is on; the vector never is.
    pub fn with_query_semantic_fingerprint(mut self, fingerprint: SemanticFingerprint) -> Self {
        self.semantic_fingerprint = Some(fingerprint);
        self
    }

    /// Creates the span, a child of the current span.
    pub fn start(self) -> tracing::Span {
        let policy = current_policy();
        let semantic = self
            .semantic_fingerprint
            .filter(|_| policy.captures(ContentKind::QueryEmbedding))
            .map(|fingerprint| fingerprint.to_string());
        let user_id = self.user_id.as_deref().map(|id| policy.user_id(id));
        let fingerprint = self.query.as_deref().map(|q| fingerprint(q).to_string());
        let query_text = self
            .query
            .as_deref()
            .and_then(|q| policy.capture(ContentKind::Query, q));
        let span = tracing::info_span!(
            "request",
            otel.name = %self.name,
            { attribute::SESSION_ID } = self.session_id.as_deref(),
            { attribute::USER_ID } = user_id.as_deref(),
            { attribute::CLOSEDLOOP_TURN_INDEX } = self.turn_index,
            { attribute::GEN_AI_CONVERSATION_ID } = self.conversation_id.as_deref(),
            { attribute::CLOSEDLOOP_QUERY_FINGERPRINT } = fingerprint.as_deref(),
            { attribute::CLOSEDLOOP_QUERY_SEMANTIC_FINGERPRINT } = semantic.as_deref(),
            { attribute::CLOSEDLOOP_QUERY_TEXT } = Empty,
        );
        if let Some(text) = query_text {
            span.record(CLOSEDLOOP_QUERY_TEXT, text.as_ref());
        }
        span
    }
}

/// Records the user's query on `span`: its fingerprint always, its text only when query capture
/// is on. Generation spans below `span` inherit the fingerprint. A span records one query: a
/// second call, or a call on a generation span that already inherited a fingerprint, is ignored.
pub fn record_query(span: &tracing::Span, query: &str) {
    let fp = StringValue::from(fingerprint(query).to_string());
    update(span, |policy| {
        let text = policy
            .capture(ContentKind::Query, query)
            .map(|text| KeyValue::new(CLOSEDLOOP_QUERY_TEXT, text.into_owned()));
        Some(Update::Query {
            fingerprint: fp,
            text,
        })
    });
}

/// Records the query's semantic fingerprint on `span` (made with
/// [`SemanticHasher::fingerprint`](crate::SemanticHasher::fingerprint) from the query's
/// embedding), when query-embedding capture ([`ContentKind::QueryEmbedding`]) is on. Generation
/// spans below `span` inherit it. The first fingerprint recorded or inherited wins.
pub fn record_query_semantic_fingerprint(span: &tracing::Span, fingerprint: &SemanticFingerprint) {
    update(span, |policy| {
        policy
            .captures(ContentKind::QueryEmbedding)
            .then(|| Update::SemanticFingerprint(StringValue::from(fingerprint.to_string())))
    });
}
