//! An instrumented RAG HTTP service over a bundled help center, to watch the closedloop
//! feedback loop close on one machine.
//!
//! `POST /ask` retrieves help-center chunks with BM25, reranks them, renders one of two prompt
//! template versions (chosen per session) and answers, either with an OpenAI-compatible model
//! or with a clearly labelled extractive fallback. Each request produces an HTTP server span, a
//! request span with the session, user, turn and query fingerprint, a retrieval span, a rerank
//! span, a filter span when the template takes fewer chunks, and a generation span that
//! `closedloop-tracing` fills with the template id, version and hash and the chunk IDs actually
//! placed in the prompt. The answer carries a [`ResponseRef`](closedloop_tracing::ResponseRef)
//! and a signed feedback token; `POST /feedback` verifies the token and records a feedback
//! span in the answer's trace.
//!
//! # Example
//!
//! ```no_run
//! use closedloop_example_rag::{serve, Config};
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on {}", listener.local_addr()?);
//! let config = Config::new(b"a shared secret of at least 32 bytes!".to_vec());
//! serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

mod answer;
mod bm25;
mod corpus;
mod rerank;
mod service;
mod templates;
mod text;

pub use answer::{
    AnswerError, OpenAiConfig, EXTRACTIVE_LABEL, EXTRACTIVE_MODEL, EXTRACTIVE_PROVIDER, NOT_FOUND,
};
pub use bm25::{Bm25Index, Scored, B, K1};
pub use corpus::{Chunk, Corpus, CorpusError};
pub use rerank::rerank;
pub use service::{
    default_feedback_token_ttl_secs, default_model_timeout_secs, router, serve, ApiError,
    AskRequest, AskResponse, Config, FeedbackRequest, FeedbackResponse, DATA_SOURCE, RERANK_TOP_N,
    RETRIEVAL_TOP_K,
};
pub use templates::{template_version_for_session, TEMPLATE_ID};
