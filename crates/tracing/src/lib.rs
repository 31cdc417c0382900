//! A `tracing` layer that makes every LLM answer traceable, and the closedloop feedback API.
//!
//! Rust services that already export `tracing` spans through [`tracing_opentelemetry`] add one
//! layer, [`ClosedloopLayer`], and get generation spans that say which prompt template, which
//! chunks, which model, which session and which query produced each answer. The application
//! hands a [`ResponseRef`] to its client with each answer; later (hours later, from another
//! process) [`record_feedback`] puts a feedback span in that answer's trace.
//!
//! - [`ClosedloopLayer`]: carries chunk IDs, index version, template, session, user, turn and
//!   query fingerprint onto generation spans; names plain `gen_ai.*` spans.
//! - Span helpers: [`generation`], [`retrieval`], [`rerank`], [`filter`], [`embedding`],
//!   [`request`], [`record_query`].
//! - [`PromptTemplate`] and [`TemplateRegistry`]: content-hash versioned templates.
//! - [`fingerprint()`] and [`Fingerprint`]: privacy-preserving query fingerprints;
//!   [`SemanticHasher`] and [`SemanticFingerprint`]: the same for the query's embedding.
//! - [`ContentPolicy`] and [`ContentKind`]: opt-in content capture and redaction.
//! - [`ResponseRef`], [`verify_feedback_token`]: what the client gets, and what the receiver checks.
//! - [`record_feedback`], [`Feedback`], [`FeedbackRecorder`]: the feedback API.
//! - [`guide`]: how each feature behaves, with the accepted field encodings.
//!
//! # Example
//!
//! ```no_run
//! use closedloop_semconv::attribute::{FeedbackSignal, GenAiOperationName};
//! use closedloop_tracing::{generation, record_feedback, request, retrieval, ClosedloopLayer};
//! use closedloop_tracing::{Feedback, TemplateRegistry};
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_otlp::WithExportConfig as _;
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let exporter = opentelemetry_otlp::SpanExporter::builder()
//!         .with_tonic()
//!         .with_endpoint("http://localhost:4317")
//!         .build()?;
//!     let provider = SdkTracerProvider::builder()
//!         .with_batch_exporter(exporter)
//!         .build();
//!     opentelemetry::global::set_tracer_provider(provider.clone());
//!
//!     let subscriber = tracing_subscriber::registry()
//!         .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("support-bot")))
//!         .with(ClosedloopLayer::new());
//!     tracing::subscriber::set_global_default(subscriber)?;
//!
//!     let mut templates = TemplateRegistry::new();
//!     templates.register("answer", "Context:\n{context}\n\nQuestion: {question}");
//!
//!     let question = "How do I reset my password?";
//!     let request = request("POST /chat")
//!         .with_session_id("6f1c…")
//!         .with_turn_index(0)
//!         .with_query(question)
//!         .start();
//!     let _request = request.enter();
//!
//!     let search = retrieval("kb").with_index_version("2026-11-20").start();
//!     search.record_chunks(["kb-reset#2", "kb-locked#0"], Some(&[0.82, 0.61]));
//!     drop(search);
//!
//!     let llm = generation(GenAiOperationName::Chat, "gpt-4o").with_provider("openai").start();
//!     let response = {
//!         let _llm = llm.span().enter();
//!         let _prompt = templates.render("answer", &[("context", "…"), ("question", question)])?;
//!         // … call the model …
//!         llm.record_usage(812, 64);
//!         llm.response_ref()
//!     };
//!
//!     // Later, when the user clicks thumbs down:
//!     if let Some(response) = response {
//!         record_feedback(&response, Feedback::new(FeedbackSignal::ThumbsDown))?;
//!     }
//!     provider.shutdown()?;
//!     Ok(())
//! }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

mod content;
mod feedback;
mod fingerprint;
pub mod guide;
mod layer;
pub mod novelty;
mod response;
mod semantic;
mod spans;
mod template;
mod token;

pub use content::{ContentKind, ContentPolicy, CAPTURE_MESSAGE_CONTENT_ENV};
pub use feedback::{record_feedback, Feedback, FeedbackError, FeedbackRecorder};
pub use fingerprint::{
    fingerprint, queries_contrast, query_similarity, Fingerprint, ParseFingerprintError,
    SUGGESTED_REPHRASE_THRESHOLD,
};
pub use layer::{ClosedloopLayer, ClosedloopLayerBuilder};
pub use response::{ResponseRef, ResponseRefError};
pub use semantic::{
    ParseSemanticFingerprintError, SemanticFingerprint, SemanticFingerprintError, SemanticHasher,
    SUGGESTED_SEMANTIC_THRESHOLD,
};
pub use spans::{
    embedding, filter, generation, record_query, record_query_semantic_fingerprint, request,
    rerank, retrieval, EmbeddingBuilder, GenerationBuilder, GenerationSpan, RequestBuilder,
    RetrievalBuilder, RetrievalSpan,
};
pub use template::{PromptTemplate, RenderError, TemplateRegistry};
pub use token::{issue_feedback_token, verify_feedback_token, TokenError, VerifiedToken};
