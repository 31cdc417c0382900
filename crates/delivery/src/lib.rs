//! closedloop's delivery: what leaves the receiver.
//!
//! [`export`] drains the store's outbox (failure-record revisions the engine's writer queued
//! in the transactions that made them) to an OTLP backend, over gRPC or HTTP/protobuf, with
//! retries, backoff and, on a shared store, leases so that several receivers never send the
//! same row at once.
//!
//! Both deliveries retry with the same [`backoff::Backoff`]:
//!
//! ```
//! use std::time::Duration;
//!
//! use closedloop_delivery::backoff::Backoff;
//!
//! let backoff = Backoff::new(100, 30);
//! assert_eq!(backoff.delay(0), Duration::from_millis(100));
//! assert!(backoff.delay(10) <= backoff.max());
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod backoff;
pub mod export;
