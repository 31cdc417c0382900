//! Spans written by OpenInference instrumentations (Arize Phoenix) are indexed and joined.

mod support;

use std::time::Duration;

use closedloop_receiver::Pipeline;
use closedloop_semconv::attribute as attr;
use closedloop_store::inspect::Param;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::Span;
use sha2::{Digest, Sha256};
use support::*;

const TEMPLATE: &str = "Answer using only this context:\n{context_str}\n\nQuestion: {query_str}";

#[tokio::test]
async fn openinference_spans_are_indexed_and_annotations_joined() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::http().await;
    let pipeline = Pipeline::start(config(dir.path(), Some(sink.endpoint())))
        .await
        .unwrap();

    let trace_id: [u8; 16] = rand::random();
    let (fixture, llm) = openinference_request(trace_id);
    let outcome = pipeline.ingest(fixture).await.unwrap();
    assert_eq!(outcome.rejected_spans, 0);
    assert_eq!(pipeline.stats().spans_accepted, 3);

    // The index has the chunk ids carried over from the RETRIEVER span and the template.
    let mut conn =
        closedloop_store::Connection::inspect_sqlite_file(&dir.path().join("closedloop.db"), false)
            .unwrap();
    let row = conn
        .inspect_rows(
            "SELECT tv.value, m.value, r.session_id FROM responses r
             JOIN strings tv ON tv.id = r.template_version
             JOIN strings m ON m.id = r.model
             WHERE r.trace_id = ?1 AND r.span_id = ?2",
            &[Param::Blob(&llm.0), Param::Blob(&llm.1)],
            3,
        )
        .unwrap()
        .remove(0);
    let [version, model, session] = [0, 1, 2].map(|i| row[i].text().unwrap().to_owned());
    assert_eq!(
        (version.as_str(), model.as_str(), session.as_str()),
        ("support-v7", "gpt-4o-mini", "sess-42")
    );
    drop(conn);

    // An OpenInference annotation carrier span: a new span with one link to the LLM span.
    let carrier = Span {
        trace_id: trace_id.to_vec(),
        span_id: rand::random::<[u8; 8]>().to_vec(),
        name: "annotation".into(),
        start_time_unix_nano: 1_763_780_010_000_000_000,
        end_time_unix_nano: 1_763_780_010_000_000_000,
        attributes: vec![
            text("annotations.0.annotation.name", "correctness"),
            text("annotations.0.annotation.label", "incorrect"),
            double("annotations.0.annotation.score", 0.0),
            text("annotations.0.annotation.annotator_kind", "HUMAN"),
        ],
        links: vec![Link {
            trace_id: llm.0.to_vec(),
            span_id: llm.1.to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    pipeline.ingest(request(vec![carrier])).await.unwrap();

    let spans = sink.wait_for(1, Duration::from_secs(10)).await;
    let record = &spans[0];
    assert_eq!(record.span.trace_id, trace_id.to_vec());
    assert_eq!(record.span.parent_span_id, llm.1.to_vec());
    assert_eq!(record.bool(attr::CLOSEDLOOP_FAILURE_ENRICHED), Some(true));
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_CONTEXT_CHUNK_IDS),
        Some(vec![
            "kb-reset-password#2".to_owned(),
            "kb-account-locked#0".to_owned()
        ])
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_VERSION),
        Some("support-v7")
    );
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(TEMPLATE)));
    assert_eq!(
        record.str(attr::CLOSEDLOOP_PROMPT_TEMPLATE_HASH),
        Some(hash.as_str())
    );
    assert_eq!(
        record.str(attr::CLOSEDLOOP_FAILURE_RESPONSE_MODEL),
        Some("gpt-4o-mini")
    );
    assert_eq!(record.str(attr::SESSION_ID), Some("sess-42"));
    assert_eq!(record.str(attr::USER_ID), Some("user-7"));
    assert_eq!(
        record.strs(attr::CLOSEDLOOP_FAILURE_SIGNALS),
        Some(vec!["thumbs_down".to_owned()])
    );
    pipeline.shutdown().await.unwrap();
}
