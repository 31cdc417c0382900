//! Semantic conventions for LLM, retrieval, feedback and failure-record spans.
//!
//! closedloop reuses the OpenTelemetry GenAI conventions (`gen_ai.*`) and the generic
//! `session.id`, `user.id` and `error.type` verbatim, and adds its own attributes under the
//! single prefix `closedloop.` only where no convention exists: prompt template identity, the
//! chunks placed in a prompt, the retrieval index version, feedback signals, failure records
//! and their triage. Content attributes (prompts, messages, queries, comments) are opt-in.
//!
//! Everything except [`UnknownValue`] is generated from the YAML registry in `model/`; the
//! same registry renders `docs/semconv.md`.
//!
//! - [`attribute`]: a constant per attribute key and a typed enum per attribute with
//!   well-known values.
//! - [`metric`]: names and units of the receiver's own metrics.
//! - [`span`]: span-name helpers and span kinds.
//! - [`compat`]: the equivalent OpenInference and OpenLLMetry keys, and the reverse lookup.
//!
//! # Examples
//!
//! ```
//! use closedloop_semconv::attribute::{self, FeedbackSignal};
//! use closedloop_semconv::{compat, span};
//!
//! assert_eq!(attribute::CLOSEDLOOP_FEEDBACK_SIGNAL, "closedloop.feedback.signal");
//!
//! let signal: FeedbackSignal = "thumbs_down".parse()?;
//! assert_eq!(signal, FeedbackSignal::ThumbsDown);
//! assert_eq!(span::feedback_name(signal.as_str()), "feedback thumbs_down");
//!
//! assert_eq!(
//!     compat::canonical_for("llm.model_name"),
//!     Some(attribute::GEN_AI_RESPONSE_MODEL)
//! );
//! # Ok::<(), closedloop_semconv::UnknownValue>(())
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod attribute;
pub mod compat;
mod error;
pub mod metric;
pub mod span;

pub use error::UnknownValue;
