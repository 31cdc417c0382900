//! A backend that is down loses nothing: records wait in the outbox, across restarts too.

mod support;

use std::time::Duration;

use closedloop_receiver::{ExportProtocol, Pipeline};
use closedloop_semconv::attribute as attr;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn records_wait_in_the_outbox_until_the_backend_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let addr = reserve_addr().await;
    let pipeline = Pipeline::start(config(
        dir.path(),
        Some((format!("http://{addr}"), ExportProtocol::Grpc)),
    ))
    .await
    .unwrap();
    let first = fail_one(&pipeline).await;
    let second = fail_one(&pipeline).await;
    // Give the exporter time to fail a few times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = pipeline.stats();
    assert_eq!(stats.failure_records, 2);
    assert_eq!(stats.export_pending, 2);
    assert_eq!(stats.export_sent, 0);

    let sink = Sink::start_on(addr, ExportProtocol::Grpc).await;
    let spans = sink.wait_for(2, WAIT).await;
    let mut parents: Vec<_> = spans
        .iter()
        .map(|span| span.span.parent_span_id.clone())
        .collect();
    parents.sort();
    let mut expected = vec![first.1.to_vec(), second.1.to_vec()];
    expected.sort();
    assert_eq!(parents, expected);
    eventually(WAIT, || pipeline.stats().export_pending == 0).await;
    assert_eq!(pipeline.stats().export_sent, 2);
    pipeline.shutdown().await.unwrap();
    sink.stop().await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let addr = reserve_addr().await;
    let endpoint = Some((format!("http://{addr}"), ExportProtocol::HttpProtobuf));
    let response = {
        let pipeline = Pipeline::start(config(dir.path(), endpoint.clone()))
            .await
            .unwrap();
        let response = fail_one(&pipeline).await;
        assert_eq!(pipeline.stats().export_pending, 1);
        // Dropped without shutdown, as in a crash of the tasks.
        drop(pipeline);
        response
    };
    // The dropped pipeline's writer closes the file once its queue is drained.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pipeline = Pipeline::start(config(dir.path(), endpoint)).await.unwrap();
    assert_eq!(pipeline.stats().export_pending, 1, "the outbox survived");
    let sink = Sink::start_on(addr, ExportProtocol::HttpProtobuf).await;
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(spans[0].span.trace_id, response.0.to_vec());
    assert_eq!(spans[0].int(attr::CLOSEDLOOP_FAILURE_REVISION), Some(1));
    eventually(WAIT, || pipeline.stats().export_pending == 0).await;
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 1);
    sink.stop().await;
}
