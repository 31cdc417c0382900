//! closedloop's delivery: what leaves the receiver.
//!
//! [`export`] drains the store's outbox (failure-record revisions the engine's writer queued
//! in the transactions that made them) to an OTLP backend, over gRPC or HTTP/protobuf, with
//! retries, backoff and, on a shared store, leases so that several receivers never send the
//! same row at once.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod backoff;
pub mod export;
