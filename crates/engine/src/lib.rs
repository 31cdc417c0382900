//! closedloop's engine: what the receiver does with what it keeps.
//!
//! - [`store`]: the handle to the group-commit writer thread ([`store::Store`]), which applies
//!   every queued write (ingest, feedback, outbox deliveries, pruning) in one transaction and
//!   runs the join inside it.
//! - [`join`]: feedback matched to the response it judges, and the failure record written.
//! - [`lineage`]: where a request's responses sit in their traces (aliases, nested LLM spans).
//! - [`rules`]: the failure rules (which feedback makes a failure record, of which category).
//! - [`detectors`]: the implicit-signal detectors, one module per detector with its
//!   configuration section.
//! - [`triage`]: routing a record to an owner with a due time.
//! - [`direct`]: state changes made by a command beside the writer (review labels, triage
//!   status), through the same join.
//! - [`counters`]: the engine's counters and the state its workers share.
//!
//! All SQL lives in `closedloop-store`; this crate calls its typed
//! [`Connection`](closedloop_store::Connection) methods.
//!
//! The receiver starts the writer with its configuration sections:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use closedloop_engine::counters::Shared;
//! use closedloop_engine::detectors::DetectorsConfig;
//! use closedloop_engine::join::JoinConfig;
//! use closedloop_engine::store::{IngestBatch, Store, StoreConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let shared = Arc::new(Shared::default());
//! let store = Store::open(
//!     &StoreConfig::default(),
//!     &JoinConfig::default(),
//!     &DetectorsConfig::default(),
//!     Arc::clone(&shared),
//! )?;
//! // Resolves after the group commit that made the batch durable.
//! store.ingest(IngestBatch::default()).expect("queued").await??;
//! store.close_blocking();
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod breakdown;
pub mod counters;
pub mod detectors;
pub mod direct;
pub mod failure_span;
pub mod join;
pub mod lineage;
pub mod monitors;
pub mod rules;
pub mod secret;
pub mod store;
pub mod timefmt;
pub mod triage;
pub mod vocab;

use closedloop_store::records;
