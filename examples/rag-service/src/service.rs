//! The HTTP API: `POST /ask` and `POST /feedback`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use closedloop_semconv::attribute::{
    FailureCategory, FeedbackSignal, GenAiOperationName, ERROR_TYPE,
};
use closedloop_tracing::{
    filter, generation, request, rerank, retrieval, verify_feedback_token, Feedback, FeedbackError,
    FeedbackRecorder, RenderError, ResponseRef, TokenError,
};
use opentelemetry::trace::{Status, Tracer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::answer::{AnswerError, Answerer, OpenAiConfig};
use crate::bm25::{Bm25Index, Scored};
use crate::corpus::Corpus;
use crate::rerank::rerank as rerank_chunks;
use crate::templates::Templates;

/// `gen_ai.data_source.id` of the bundled help center.
pub const DATA_SOURCE: &str = "tallyhive-help-center";
/// Chunks the first-stage retrieval returns (`closedloop.retrieval.top_k`).
pub const RETRIEVAL_TOP_K: usize = 8;
/// Chunks the rerank keeps.
pub const RERANK_TOP_N: usize = 3;

/// Longest accepted query, in characters.
const MAX_QUERY_CHARS: usize = 2_000;
/// Longest accepted session, user or feedback id, in characters.
const MAX_ID_CHARS: usize = 256;
/// Longest accepted feedback comment, in characters.
const MAX_COMMENT_CHARS: usize = 2_000;
/// Largest accepted request body, in KiB.
const MAX_BODY_KIB: usize = 64;
/// Sessions whose turn counters are kept; beyond it the counters start over.
const MAX_TRACKED_SESSIONS: usize = 100_000;

/// HTTP attribute keys of the OpenTelemetry HTTP server conventions. closedloop-semconv covers
/// only the GenAI, closedloop, session, user and error attributes, so these are spelled here,
/// once.
mod http_attr {
    pub(super) const REQUEST_METHOD: &str = "http.request.method";
    pub(super) const ROUTE: &str = "http.route";
    pub(super) const RESPONSE_STATUS_CODE: &str = "http.response.status_code";
}

/// How long a feedback token stays valid by default, in seconds (24 hours).
pub const fn default_feedback_token_ttl_secs() -> u64 {
    86_400
}

/// How long a model call may take by default, in seconds.
pub const fn default_model_timeout_secs() -> u64 {
    30
}

/// Configuration of the RAG service; see [`router`].
#[derive(Debug, Clone)]
pub struct Config {
    corpus: Corpus,
    openai: Option<OpenAiConfig>,
    feedback_secret: Vec<u8>,
    feedback_token_ttl_secs: u64,
    model_timeout_secs: u64,
    feedback_recorder: Option<Recorder>,
}

type RecordFn = dyn Fn(&ResponseRef, Feedback) -> Result<(), FeedbackError> + Send + Sync;

/// A type-erased [`FeedbackRecorder`], whatever its tracer.
#[derive(Clone)]
struct Recorder(Arc<RecordFn>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    fn new<T>(recorder: FeedbackRecorder<T>) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Recorder(Arc::new(move |response, feedback| {
            recorder.record(response, feedback)
        }))
    }
}

impl Config {
    /// The bundled corpus, the extractive answerer, and feedback tokens signed with `secret`
    /// (the receiver's `CLOSEDLOOP_FEEDBACK_TOKEN_SECRET`, so it can verify them too).
    pub fn new(feedback_secret: impl Into<Vec<u8>>) -> Self {
        Config {
            corpus: Corpus::bundled(),
            openai: None,
            feedback_secret: feedback_secret.into(),
            feedback_token_ttl_secs: default_feedback_token_ttl_secs(),
            model_timeout_secs: default_model_timeout_secs(),
            feedback_recorder: None,
        }
    }

    /// Serves answers from another corpus.
    pub fn with_corpus(mut self, corpus: Corpus) -> Self {
        self.corpus = corpus;
        self
    }

    /// Answers with an OpenAI-compatible model instead of the extractive answerer.
    pub fn with_openai(mut self, openai: OpenAiConfig) -> Self {
        self.openai = Some(openai);
        self
    }

    /// How long feedback tokens stay valid, in seconds.
    pub fn with_feedback_token_ttl_secs(mut self, secs: u64) -> Self {
        self.feedback_token_ttl_secs = secs;
        self
    }

    /// How long a model call may take, in seconds.
    pub fn with_model_timeout_secs(mut self, secs: u64) -> Self {
        self.model_timeout_secs = secs;
        self
    }

    /// Records feedback spans with `recorder` instead of [`FeedbackRecorder::global`] (which is
    /// resolved when [`router`] is called, so install the tracer provider first).
    pub fn with_feedback_recorder<T>(mut self, recorder: FeedbackRecorder<T>) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        self.feedback_recorder = Some(Recorder::new(recorder));
        self
    }

    /// The corpus served.
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }
}

struct AppState {
    index: Bm25Index,
    templates: Templates,
    answerer: Answerer,
    secret: Vec<u8>,
    token_ttl: Duration,
    recorder: Recorder,
    turns: Mutex<HashMap<String, i64>>,
}

impl AppState {
    /// The zero-based turn of this request in its session.
    fn next_turn(&self, session_id: &str) -> i64 {
        // A poisoned lock only means another request panicked mid-update; the counts are
        // still usable.
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        if turns.len() >= MAX_TRACKED_SESSIONS && !turns.contains_key(session_id) {
            turns.clear();
        }
        let turn = turns.entry(session_id.to_owned()).or_insert(0);
        let current = *turn;
        *turn += 1;
        current
    }
}

/// The routes `POST /ask`, `POST /feedback` and `GET /healthz`.
pub fn router(config: Config) -> Router {
    let state = AppState {
        answerer: Answerer::new(
            config.openai,
            Duration::from_secs(config.model_timeout_secs),
        ),
        index: Bm25Index::new(config.corpus),
        templates: Templates::new(),
        secret: config.feedback_secret,
        token_ttl: Duration::from_secs(config.feedback_token_ttl_secs),
        recorder: config
            .feedback_recorder
            .unwrap_or_else(|| Recorder::new(FeedbackRecorder::global())),
        turns: Mutex::new(HashMap::new()),
    };
    Router::new()
        .route("/ask", post(ask))
        .route("/feedback", post(feedback))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_KIB * 1024))
        .with_state(Arc::new(state))
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The body of `POST /ask`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The client's session; picks the template version and groups turns.
    pub session_id: String,
    /// The end user, if known.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The question.
    pub query: String,
}

/// The answer to `POST /ask`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AskResponse {
    /// The answer text.
    pub answer: String,
    /// The generation span the answer came from (trace id, span id, traceparent); `null`
    /// when no OpenTelemetry layer is installed.
    pub response: Option<ResponseRef>,
    /// The signed token to send back with feedback; `null` like `response`.
    pub feedback_token: Option<String>,
    /// The prompt template version used (`v1` or `v2`).
    pub template_version: String,
    /// The chunks placed in the prompt, in prompt order.
    pub chunk_ids: Vec<String>,
    /// What produced the answer: a model, or the extractive fallback.
    pub answerer: String,
    /// The retrieval index version.
    pub index_version: String,
}

/// The body of `POST /feedback`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The `response` of the answer judged.
    pub response: ResponseRef,
    /// The `feedback_token` of that answer.
    pub feedback_token: String,
    /// `thumbs_up`, `thumbs_down`, `copy`, `rating`, ... (`closedloop.feedback.signal`).
    pub signal: String,
    /// A score from 0.0 (worst) to 1.0 (best); implied by the signal when absent.
    #[serde(default)]
    pub value: Option<f64>,
    /// A failure category (`irrelevant_context`, `hallucination`, ...).
    #[serde(default)]
    pub category: Option<String>,
    /// Free text; exported only when comment capture is on.
    #[serde(default)]
    pub comment: Option<String>,
    /// The session the feedback was given in.
    #[serde(default)]
    pub session_id: Option<String>,
    /// An idempotency id; repeated ids are counted once by the receiver.
    #[serde(default)]
    pub feedback_id: Option<String>,
}

/// The answer to an accepted `POST /feedback`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FeedbackResponse {
    /// Always `true`: the feedback span was emitted.
    pub recorded: bool,
    /// The signal recorded.
    pub signal: String,
}

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A field is missing, empty, too long or not one of the allowed values.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The feedback token is malformed, forged or expired.
    #[error("feedback token refused")]
    Token(#[source] TokenError),
    /// The feedback token was issued for another response.
    #[error("feedback token does not match the response")]
    TokenMismatch,
    /// The feedback could not be recorded.
    #[error("feedback refused")]
    Feedback(#[source] FeedbackError),
    /// The prompt template could not be rendered.
    #[error("prompt rendering failed")]
    Render(#[source] RenderError),
    /// The model call failed.
    #[error("model call failed")]
    Model(#[source] AnswerError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::Feedback(_) => StatusCode::BAD_REQUEST,
            ApiError::Token(_) | ApiError::TokenMismatch => StatusCode::FORBIDDEN,
            ApiError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Model(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(&self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        (self.status(), Json(serde_json::json!({ "error": message }))).into_response()
    }
}

fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::InvalidRequest(format!("`{field}` is empty")));
    }
    if value.chars().count() > MAX_ID_CHARS {
        return Err(ApiError::InvalidRequest(format!(
            "`{field}` is longer than {MAX_ID_CHARS} characters"
        )));
    }
    Ok(())
}

/// The root HTTP server span of a route.
fn server_span(route: &'static str) -> tracing::Span {
    tracing::info_span!(
        "http_request",
        otel.name = %format!("POST {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        { http_attr::REQUEST_METHOD } = "POST",
        { http_attr::ROUTE } = route,
        { http_attr::RESPONSE_STATUS_CODE } = Empty,
        { ERROR_TYPE } = Empty,
    )
}

fn finish_server_span<T>(span: &tracing::Span, result: &Result<T, ApiError>) {
    let status = match result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status(),
    };
    span.record(http_attr::RESPONSE_STATUS_CODE, status.as_u16());
    if status.is_server_error() {
        span.record(ERROR_TYPE, status.as_str());
        span.record("otel.status_code", "error");
    }
}

async fn ask(
    State(state): State<Arc<AppState>>,
    Json(req): Json<AskRequest>,
) -> Result<Json<AskResponse>, ApiError> {
    let span = server_span("/ask");
    let result = answer(&state, req).instrument(span.clone()).await;
    finish_server_span(&span, &result);
    result.map(Json)
}

/// Records chunks on a retrieval-family span.
fn record(span: &closedloop_tracing::RetrievalSpan, chunks: &[Scored]) {
    let scores: Vec<f64> = chunks.iter().map(|c| c.score).collect();
    span.record_chunks(chunks.iter().map(|c| c.id.clone()), Some(&scores));
}

async fn answer(state: &AppState, req: AskRequest) -> Result<AskResponse, ApiError> {
    check_id("session_id", &req.session_id)?;
    if let Some(user) = &req.user_id {
        check_id("user_id", user)?;
    }
    let query = req.query.trim();
    if query.is_empty() {
        return Err(ApiError::InvalidRequest("`query` is empty".to_owned()));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::InvalidRequest(format!(
            "`query` is longer than {MAX_QUERY_CHARS} characters"
        )));
    }

    let variant = state.templates.for_session(&req.session_id);
    let index_version = state.index.corpus().version().to_owned();
    let mut turn = request("answer")
        .with_session_id(&req.session_id)
        .with_turn_index(state.next_turn(&req.session_id))
        .with_query(query);
    if let Some(user) = &req.user_id {
        turn = turn.with_user_id(user);
    }
    let turn = turn.start();

    async {
        // First stage: BM25.
        let search = retrieval(DATA_SOURCE)
            .with_index_version(&index_version)
            .with_top_k(RETRIEVAL_TOP_K as i64)
            .start();
        let candidates = search.span().in_scope(|| {
            search.record_query_text(query);
            let hits = state.index.search(query, RETRIEVAL_TOP_K);
            record(&search, &hits);
            hits
        });
        drop(search);

        // Second stage: coverage-aware rerank, cut to the top 3.
        let reranked_span = rerank(DATA_SOURCE).with_top_k(RERANK_TOP_N as i64).start();
        let reranked = reranked_span.span().in_scope(|| {
            let kept = rerank_chunks(&state.index, query, &candidates, RERANK_TOP_N);
            record(&reranked_span, &kept);
            kept
        });
        drop(reranked_span);

        // The template version decides how many chunks fit in the prompt; a smaller budget
        // drops the tail, which is a filter step.
        let context: Vec<Scored> = if reranked.len() > variant.context_chunks {
            let budget = filter(DATA_SOURCE)
                .with_top_k(variant.context_chunks as i64)
                .start();
            let kept: Vec<Scored> = reranked[..variant.context_chunks].to_vec();
            budget.span().in_scope(|| record(&budget, &kept));
            kept
        } else {
            reranked
        };
        let chunks: Vec<(&str, &str)> = context
            .iter()
            .map(|c| {
                let chunk = &state.index.corpus().chunks()[c.index];
                (chunk.id.as_str(), chunk.text.as_str())
            })
            .collect();
        let context_text = chunks
            .iter()
            .map(|(id, text)| format!("[{id}] {text}"))
            .collect::<Vec<_>>()
            .join("\n\n");

        let mut builder = generation(GenAiOperationName::Chat, state.answerer.model())
            .with_provider(state.answerer.provider());
        if matches!(state.answerer, Answerer::OpenAi { .. }) {
            builder = builder
                .with_temperature(crate::answer::TEMPERATURE)
                .with_max_tokens(crate::answer::MAX_TOKENS);
        }
        let llm = builder.start();
        let prompt = variant
            .template
            .render_in(
                llm.span(),
                &[("context", context_text.as_str()), ("question", query)],
            )
            .map_err(ApiError::Render)?;
        llm.record_input(&prompt);

        let text = match &state.answerer {
            Answerer::Extractive => llm.span().in_scope(|| {
                crate::answer::extractive(&state.index, query, &chunks, variant.style)
            }),
            Answerer::OpenAi { .. } => {
                match state
                    .answerer
                    .complete(&prompt)
                    .instrument(llm.span().clone())
                    .await
                {
                    Ok(completion) => {
                        if let (Some(id), Some(model)) =
                            (&completion.response_id, &completion.response_model)
                        {
                            llm.record_response(id, model);
                        }
                        if let Some(reason) = &completion.finish_reason {
                            llm.record_finish_reasons(&[reason]);
                        }
                        if let Some((input, output)) = completion.usage {
                            llm.record_usage(input, output);
                        }
                        completion.text
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Model call failed.");
                        llm.span().set_attribute(ERROR_TYPE, e.error_type());
                        llm.span().set_status(Status::error(e.to_string()));
                        return Err(ApiError::Model(e));
                    }
                }
            }
        };
        llm.record_output(&text);

        let response = llm.response_ref();
        let feedback_token = response.as_ref().and_then(|r| {
            r.clone()
                .with_feedback_token(&state.secret, SystemTime::now() + state.token_ttl)
                .feedback_token()
                .map(str::to_owned)
        });
        Ok(AskResponse {
            answer: text,
            response,
            feedback_token,
            template_version: variant.template.version().to_owned(),
            chunk_ids: chunks.iter().map(|(id, _)| (*id).to_owned()).collect(),
            answerer: state.answerer.label(),
            index_version: index_version.clone(),
        })
    }
    .instrument(turn)
    .await
}

async fn feedback(
    State(state): State<Arc<AppState>>,
    Json(req): Json<FeedbackRequest>,
) -> Result<Json<FeedbackResponse>, ApiError> {
    let span = server_span("/feedback");
    let result = span.in_scope(|| record_feedback(&state, req));
    finish_server_span(&span, &result);
    result.map(Json)
}

fn record_feedback(state: &AppState, req: FeedbackRequest) -> Result<FeedbackResponse, ApiError> {
    let verified = verify_feedback_token(&state.secret, &req.feedback_token, SystemTime::now())
        .map_err(ApiError::Token)?;
    if verified.trace_id() != req.response.trace_id()
        || verified.span_id() != req.response.span_id()
    {
        return Err(ApiError::TokenMismatch);
    }
    let signal: FeedbackSignal = req
        .signal
        .parse()
        .map_err(|_| ApiError::InvalidRequest(format!("unknown signal `{}`", req.signal)))?;
    let mut feedback = Feedback::new(signal);
    if let Some(value) = req.value {
        feedback = feedback.with_value(value);
    }
    if let Some(category) = &req.category {
        let category: FailureCategory = category
            .parse()
            .map_err(|_| ApiError::InvalidRequest(format!("unknown category `{category}`")))?;
        feedback = feedback.with_category(category);
    }
    if let Some(comment) = req.comment {
        if comment.chars().count() > MAX_COMMENT_CHARS {
            return Err(ApiError::InvalidRequest(format!(
                "`comment` is longer than {MAX_COMMENT_CHARS} characters"
            )));
        }
        feedback = feedback.with_comment(comment);
    }
    if let Some(session) = req.session_id {
        check_id("session_id", &session)?;
        feedback = feedback.with_session_id(session);
    }
    if let Some(id) = req.feedback_id {
        check_id("feedback_id", &id)?;
        feedback = feedback.with_id(id);
    }
    (state.recorder.0)(&verified.response_ref(), feedback).map_err(ApiError::Feedback)?;
    Ok(FeedbackResponse {
        recorded: true,
        signal: signal.as_str().to_owned(),
    })
}
