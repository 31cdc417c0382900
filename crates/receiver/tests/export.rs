//! The OTLP exporter: both transports, retries that honour the backend, and no outbox
//! without an endpoint.

mod support;

use std::time::{Duration, Instant};

use closedloop_receiver::{ExportProtocol, Pipeline};
use closedloop_semconv::attribute as attr;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn http_export_honours_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::http().await;
    sink.fail_next(1);
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    let started = Instant::now();
    let response = fail_one(&pipeline).await;
    let spans = sink.wait_for(1, WAIT).await;
    // The first attempt got 503 with `Retry-After: 1`; the backoff alone is 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(sink.requests(), 2);
    assert_eq!(spans[0].span.trace_id, response.0.to_vec());
    assert_eq!(spans[0].service_name.as_deref(), Some("closedloop"));
    assert_eq!(
        spans[0].str(attr::CLOSEDLOOP_FAILURE_SEVERITY),
        Some("critical")
    );
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn grpc_export_retries_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    sink.fail_next(2);
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();
    fail_one(&pipeline).await;
    sink.wait_for(1, WAIT).await;
    assert_eq!(sink.requests(), 3);
    eventually(WAIT, || pipeline.stats().export_pending == 0).await;
    assert_eq!(pipeline.stats().export_sent, 1);
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_an_endpoint_records_are_stored_and_the_outbox_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), None)).await.unwrap();
    fail_one(&pipeline).await;
    pipeline.shutdown().await.unwrap();
    assert_eq!(pipeline.stats().failure_records, 1);
    assert_eq!(pipeline.stats().export_pending, 0);

    let mut conn =
        closedloop_store::Connection::inspect_sqlite_file(&dir.path().join("closedloop.db"), false)
            .unwrap();
    let mut count = |table: &str| -> i64 {
        conn.inspect_int(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
    };
    assert_eq!(count("failures"), 1);
    assert_eq!(count("outbox"), 0);
}

#[tokio::test]
async fn many_records_are_batched_and_all_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let addr = reserve_addr().await;
    let mut config = config(
        dir.path(),
        Some((format!("http://{addr}"), ExportProtocol::Grpc)),
    );
    config.export.max_batch_spans = 16;
    let pipeline = Pipeline::start(config).await.unwrap();
    for _ in 0..50 {
        fail_one(&pipeline).await;
    }
    let sink = Sink::start_on(addr, ExportProtocol::Grpc).await;
    let spans = sink.wait_for(50, WAIT).await;
    assert_eq!(spans.len(), 50);
    assert!(sink.requests() >= 4, "batches of at most 16");
    pipeline.shutdown().await.unwrap();
}
