//! How the exporter sizes its requests: smaller batches for a backend slower than the
//! timeout, and a batch rejected as malformed split to isolate its bad span.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use closedloop_receiver::{ExportProtocol, Pipeline};
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn distinct(sink: &Sink) -> HashSet<Vec<u8>> {
    sink.spans()
        .into_iter()
        .map(|exported| exported.span.span_id)
        .collect()
}

/// A backend that needs longer than the export timeout for a full batch (but keeps what it
/// got) still receives every record: the exporter halves its batches after each timeout, and
/// re-sends less than two full batches in all.
#[tokio::test]
async fn an_http_backend_slower_than_the_timeout_drains_the_outbox_with_bounded_duplicates() {
    slow_backend_drains(ExportProtocol::HttpProtobuf).await;
}

/// The same over gRPC, where tonic reports its own timeout as CANCELLED.
#[tokio::test]
async fn a_grpc_backend_slower_than_the_timeout_drains_the_outbox_with_bounded_duplicates() {
    slow_backend_drains(ExportProtocol::Grpc).await;
}

async fn slow_backend_drains(protocol: ExportProtocol) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_on(reserve_addr().await, protocol).await;
    sink.fail_next(usize::MAX);
    let mut config = config(dir.path(), Some(sink.endpoint()));
    let max_batch = 64;
    config.export.max_batch_spans = max_batch;
    config.export.timeout_millis = Some(500);
    let pipeline = Pipeline::start(config).await.unwrap();
    let records = 100;
    for _ in 0..records {
        fail_one(&pipeline).await;
    }
    // 20 ms a span: a full batch takes 1.3 s, 16 spans 0.3 s.
    sink.delay_per_span(Duration::from_millis(20));
    sink.fail_next(0);

    eventually(WAIT, || distinct(&sink).len() == records).await;
    let received = sink.spans().len();
    eprintln!(
        "received {received}, request sizes: {:?}",
        sink.request_sizes()
    );
    assert!(
        received - records < 2 * max_batch,
        "{received} spans received for {records} records: {:?}",
        sink.request_sizes()
    );
    assert!(
        sink.request_sizes()
            .iter()
            .any(|&size| size < max_batch / 2),
        "smaller batches after the timeouts: {:?}",
        sink.request_sizes()
    );
    pipeline.shutdown().await.unwrap();
}

/// One bad span in a batch: the backend's 400 makes the exporter split that batch until the
/// bad span is alone (and dropped); the good spans are delivered in a few requests, and the
/// next batch is a full one again.
#[tokio::test]
async fn a_rejected_batch_is_split_once_and_full_batches_resume() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_on(reserve_addr().await, ExportProtocol::HttpProtobuf).await;
    sink.fail_next(usize::MAX);
    let mut config = config(dir.path(), Some(sink.endpoint()));
    config.export.max_batch_spans = 16;
    let pipeline = Pipeline::start(config).await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..48 {
        keys.push(fail_one(&pipeline).await);
    }
    let (bad, _) = keys[12];
    sink.reject_trace(bad);
    sink.fail_next(0);

    eventually(WAIT, || distinct(&sink).len() == keys.len() - 1).await;
    // Let the exporter go idle, then look at what it sent.
    eventually(WAIT, || pipeline.stats().export_pending == 0).await;
    let spans = sink.spans();
    assert!(spans.iter().all(|exported| exported.span.trace_id != bad));
    assert_eq!(spans.len(), keys.len() - 1, "no duplicates");
    let sizes = sink.request_sizes();
    // 16 rejected, halves down to the bad span alone (dropped), then two full batches.
    assert_eq!(sizes.first(), Some(&16), "{sizes:?}");
    assert!(sizes.len() <= 11, "a few requests: {sizes:?}");
    assert_eq!(
        sizes[sizes.len() - 2..],
        [16, 16],
        "full batches after the bad span: {sizes:?}"
    );
    pipeline.shutdown().await.unwrap();
}

/// A backend that rejects every request over 10 spans: each full batch is split once and
/// delivered in halves, and the next batch is a full one again (not one span per request).
#[tokio::test]
async fn a_request_size_limit_splits_each_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_on(reserve_addr().await, ExportProtocol::HttpProtobuf).await;
    sink.fail_next(usize::MAX);
    let mut config = config(dir.path(), Some(sink.endpoint()));
    config.export.max_batch_spans = 16;
    let pipeline = Pipeline::start(config).await.unwrap();
    for _ in 0..48 {
        fail_one(&pipeline).await;
    }
    sink.max_spans(10);
    sink.fail_next(0);

    eventually(WAIT, || distinct(&sink).len() == 48).await;
    assert_eq!(sink.spans().len(), 48, "no duplicates");
    // [16, 8, 8] three times: each full batch rejected, then delivered in halves.
    let sizes = sink.request_sizes();
    assert!(
        sizes.iter().filter(|&&size| size == 16).count() >= 3,
        "full batches each time: {sizes:?}"
    );
    assert!(sizes.len() <= 10, "each batch split once: {sizes:?}");
    pipeline.shutdown().await.unwrap();
}
