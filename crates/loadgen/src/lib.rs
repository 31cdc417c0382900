//! Load generator and benchmarks for the closedloop receiver.
//!
//! - [`traces`]: realistic LLM traces (HTTP root, retrieval, rerank, generation, feedback
//!   spans), built from a seed and encoded once, so that sending costs a copy.
//! - [`load`]: sends them over OTLP/gRPC or OTLP/HTTP at a rate or unlimited, and reports
//!   spans/s, partial-success rejections and request latency percentiles.
//! - [`ceiling`]: prost decoding of the same requests on one thread, the decode-only ceiling.
//! - [`latency`]: feedback accepted → failure record at an OTLP sink, idle and under load.
//! - [`amplify`]: requests small on the wire and large once decoded (memory amplification).
//! - [`scale`]: join latency and bytes on disk per response as the store grows.
//!
//! `scripts/bench.sh` runs all of them against the receiver and rotel; `BENCHMARKS.md` holds
//! the results.
//!
//! ```
//! use closedloop_loadgen::traces::{TraceBuilder, TraceConfig};
//!
//! let bodies = TraceBuilder::new(TraceConfig::default()).bodies(2);
//! assert!(bodies[0].spans <= 100);
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod amplify;
pub mod ceiling;
pub mod latency;
pub mod load;
pub mod scale;
pub mod sink;
pub mod stats;
pub mod traces;
