//! Feedback that arrives before its response span waits for it, bounded by `join.wait_secs`.

mod support;

use std::time::{Duration, Instant};

use closedloop_receiver::Pipeline;
use closedloop_semconv::attribute as attr;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn response_within_the_window_enriches_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut config = config(dir.path(), Some(sink.endpoint()));
    config.join.wait_secs = 30;
    let pipeline = Pipeline::start(config).await.unwrap();

    let response = ids();
    pipeline
        .ingest(request(vec![feedback_span(
            child(response),
            Some(response),
            "thumbs_down",
            vec![text(
                attr::CLOSEDLOOP_FAILURE_CATEGORY,
                "irrelevant_context",
            )],
        )]))
        .await
        .unwrap();
    assert_eq!(pipeline.stats().failure_records, 0, "the feedback waits");

    pipeline
        .ingest(request(vec![generation_span(
            response,
            &Generation::default(),
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    let record = &spans[0];
    assert_eq!(record.span.parent_span_id, response.1.to_vec());
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(record.int(attr::CLOSEDLOOP_FAILURE_REVISION), Some(1));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_STAGE),
        Some("retrieval")
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION),
        Some(Generation::default().template_version)
    );
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 1, "no unenriched revision before it");
}

#[tokio::test]
async fn past_the_window_the_record_is_written_unenriched() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut config = config(dir.path(), Some(sink.endpoint()));
    config.join.wait_secs = 1;
    let pipeline = Pipeline::start(config).await.unwrap();

    let response = ids();
    let feedback = child(response);
    let sent = Instant::now();
    pipeline
        .ingest(request(vec![feedback_span(
            feedback,
            Some(response),
            "thumbs_down",
            vec![text(attr::CLOSEDLOOP_FAILURE_CATEGORY, "hallucination")],
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "the record waited for the window"
    );
    let record = &spans[0];
    assert_eq!(record.span.trace_id, response.0.to_vec());
    assert_eq!(record.span.parent_span_id, response.1.to_vec());
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(false));
    assert_eq!(record.str(attr::CLOSEDLOOP_FAILURE_STAGE), Some("unknown"));
    assert_eq!(record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_ID), None);
    assert_eq!(record.strs(attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS), None);
    assert_eq!(record.links().len(), 2);

    // The response arriving after the window does not revise the record.
    pipeline
        .ingest(request(vec![generation_span(
            response,
            &Generation::default(),
        )]))
        .await
        .unwrap();
    pipeline.shutdown().await.unwrap();
    assert_eq!(sink.spans().len(), 1);
}

#[tokio::test]
async fn waiting_room_is_bounded_in_count() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut config = config(dir.path(), Some(sink.endpoint()));
    config.join.wait_secs = 600;
    config.join.max_pending = 2;
    let pipeline = Pipeline::start(config).await.unwrap();

    let responses: Vec<Ids> = (0..3).map(|_| ids()).collect();
    for &response in &responses {
        pipeline
            .ingest(request(vec![feedback_span(
                child(response),
                Some(response),
                "thumbs_down",
                vec![],
            )]))
            .await
            .unwrap();
    }
    // The third waiting item pushed the oldest out, unenriched, long before the window.
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(spans[0].span.parent_span_id, responses[0].1.to_vec());
    assert_eq!(
        spans[0].bool(attr::CLOSEDLOOP_FAILURE_ENRICHED),
        Some(false)
    );

    // The two still waiting are enriched when their responses arrive.
    pipeline
        .ingest(request(
            responses[1..]
                .iter()
                .map(|&response| generation_span(response, &Generation::default()))
                .collect(),
        ))
        .await
        .unwrap();
    let spans = sink.wait_for(3, WAIT).await;
    for response in &responses[1..] {
        let record = spans
            .iter()
            .find(|span| span.span.parent_span_id == response.1.to_vec())
            .unwrap();
        assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    }
    pipeline.shutdown().await.unwrap();
}

#[tokio::test]
async fn waiting_feedback_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::grpc().await;
    let mut config = config(dir.path(), Some(sink.endpoint()));
    config.join.wait_secs = 60;
    let response = ids();
    {
        let pipeline = Pipeline::start(config.clone()).await.unwrap();
        pipeline
            .ingest(request(vec![feedback_span(
                child(response),
                Some(response),
                "escalate",
                vec![],
            )]))
            .await
            .unwrap();
        pipeline.shutdown().await.unwrap();
    }
    let pipeline = Pipeline::start(config).await.unwrap();
    pipeline
        .ingest(request(vec![generation_span(
            response,
            &Generation::default(),
        )]))
        .await
        .unwrap();
    let spans = sink.wait_for(1, WAIT).await;
    assert_eq!(spans[0].bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(
        spans[0].str(attr::CLOSEDLOOP_FAILURE_SEVERITY),
        Some("high")
    );
    pipeline.shutdown().await.unwrap();
}
