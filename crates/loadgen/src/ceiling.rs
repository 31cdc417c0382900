//! The decode-only ceiling: prost decoding the generator's requests in a loop, on one thread.
//!
//! A receiver must at least decode every request, so spans decoded per second of one core is
//! the most any receiver written with prost can ingest per core on this machine.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::Serialize;

use crate::stats::process_cpu_secs;
use crate::traces::Body;

/// What decoding achieved.
#[derive(Clone, Debug, Serialize)]
pub struct CeilingReport {
    /// Spans decoded per wall second.
    pub spans_per_sec: f64,
    /// Spans decoded per CPU second (the thread is alone, so close to `spans_per_sec`).
    pub spans_per_cpu_sec: Option<f64>,
    /// Megabytes of protobuf decoded per second.
    pub mb_per_sec: f64,
    /// Requests decoded.
    pub requests: u64,
    /// Mean spans per request.
    pub spans_per_request: f64,
    /// Mean encoded bytes per span.
    pub bytes_per_span: f64,
    /// Measured seconds.
    pub elapsed_secs: f64,
}

/// Decodes `bodies` round-robin for `duration` on the calling thread.
pub fn run(bodies: &[Body], duration: Duration) -> CeilingReport {
    let (mut requests, mut spans, mut bytes) = (0u64, 0u64, 0u64);
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    'outer: loop {
        for body in bodies {
            let request = ExportTraceServiceRequest::decode(&body.bytes[..])
                .expect("the generator's own requests decode");
            spans += request
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .map(|scope| scope.spans.len() as u64)
                .sum::<u64>();
            drop(request);
            bytes += body.bytes.len() as u64;
            requests += 1;
            if requests % 64 == 0 && started.elapsed() >= duration {
                break 'outer;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(process_cpu_secs())
        .map(|(before, after)| after - before);
    CeilingReport {
        spans_per_sec: spans as f64 / elapsed,
        spans_per_cpu_sec: cpu.filter(|cpu| *cpu > 0.0).map(|cpu| spans as f64 / cpu),
        mb_per_sec: bytes as f64 / elapsed / 1e6,
        requests,
        spans_per_request: spans as f64 / requests.max(1) as f64,
        bytes_per_span: bytes as f64 / spans.max(1) as f64,
        elapsed_secs: elapsed,
    }
}

impl CeilingReport {
    /// A human-readable summary.
    pub fn text(&self) -> String {
        format!(
            "decode-only ceiling   {:.0} spans/s on one thread ({:.0} per CPU second), {:.0} MB/s\n\
             requests              {} ({:.1} spans/request, {:.0} B/span) in {:.1} s",
            self.spans_per_sec,
            self.spans_per_cpu_sec.unwrap_or_default(),
            self.mb_per_sec,
            self.requests,
            self.spans_per_request,
            self.bytes_per_span,
            self.elapsed_secs
        )
    }
}
